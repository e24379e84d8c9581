"""``bso token new``: a fresh scoped token, printed once, and the line that grants it."""

import argparse
import json
import sys

from infrastructure.tokens import ROLES, TokenFileError, new_token


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "token",
        help="make a scoped token for BSO_TOKENS_FILE",
        description="Scoped tokens: each may use only the jobs whose id starts with one of its prefixes.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    new = actions.add_parser(
        "new",
        help="print a fresh token once, and the entry to add to the tokens file",
        description="Print a fresh random token (shown once: the file keeps only its SHA-256) and the "
        'entry to add to the "tokens" list of the file BSO_TOKENS_FILE names; then send bso serve SIGHUP.',
    )
    new.add_argument("name", help="who holds the token (a team), shown in refusals and logs")
    new.add_argument("--prefix", action="append", required=True, help="a job id prefix it covers (repeat for more)")
    new.add_argument("--role", choices=ROLES, default="write", help="write (and read) or read only (default write)")
    new.set_defaults(handler=new_scoped_token)


def new_scoped_token(args: argparse.Namespace) -> int:
    try:
        token, entry = new_token(args.name, args.prefix, args.role)
    except TokenFileError as error:
        print(f"bso token new: {error}".replace("tokens[0].", ""), file=sys.stderr)
        return 2
    print(f"token (shown once, keep it secret): {token}")
    print(f'add to the "tokens" list of BSO_TOKENS_FILE: {json.dumps(entry.as_entry())}')
    return 0
