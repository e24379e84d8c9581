"""The one rule for JSON the service writes (HTTP answers, ``--json`` output).

JSON has no infinities or NaN. A stored event may hold them (a cost that
overflowed, a value written before a rule existed), and no view may fail
because of it, so every non-finite float is written as ``null``; nothing else
is ever changed.
"""

import json
import math
from typing import Any


def finite_json(data: Any, *, indent: int | None = None) -> str:
    """``data`` as strict JSON, with every non-finite float as ``null``."""
    separators = (",", ":") if indent is None else None
    try:
        return json.dumps(data, ensure_ascii=False, allow_nan=False, indent=indent, separators=separators)
    except ValueError:
        pass  # rare: pay for the walk only when a non-finite number is there
    return json.dumps(_finite(data), ensure_ascii=False, allow_nan=False, indent=indent, separators=separators)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
