"""``python -m api.cli``: the ``bso`` command."""

import sys

from api.cli import main

sys.exit(main())
