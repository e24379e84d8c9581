"""Output for people at a terminal: tables that fit its width, human units, whole seconds."""

import json
import os
import shutil
import sys
import textwrap
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

ELLIPSIS = "…"
_GAP = "  "
_NARROWEST = 6  # a column is never cut below this many characters (or its own width)

Format = Callable[[Any], str]


def terminal_width() -> int | None:
    """Columns to fit: $COLUMNS, else the terminal's; None (no limit) when output is not a terminal."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def table_lines(
    headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None, firm: Sequence[bool] = ()
) -> list[str]:
    """Left-aligned columns; when wider than ``width``, the widest columns are cut with an ellipsis.

    Columns marked ``firm`` (numbers with units, times) are cut only once the others are as
    narrow as they go: free text loses its tail more gracefully.
    """
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]
    if width is not None:
        room = width - len(_GAP) * (len(headers) - 1)
        firm = list(firm) or [False] * len(headers)
        widths = _narrowed(widths, room, [not is_firm for is_firm in firm])
        widths = _narrowed(widths, room, [True] * len(headers))
    return [
        _GAP.join(_fit(text, column_width) for text, column_width in zip(line, widths)).rstrip()
        for line in [list(headers), *rows]
    ]


def _narrowed(widths: list[int], room: int, cuttable: Sequence[bool]) -> list[int]:
    floors = [min(width, _NARROWEST) for width in widths]
    widths = list(widths)
    while sum(widths) > room:
        candidates = [i for i, width in enumerate(widths) if cuttable[i] and width > floors[i]]
        if not candidates:
            break  # as narrow as these go
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def clipped(line: str, wide: bool = False) -> str:
    """One line cut to the terminal's width (unless ``wide``)."""
    width = None if wide else terminal_width()
    return line if width is None else _fit(line, width).rstrip()


def wrapped(text: str, wide: bool = False) -> str:
    """Prose wrapped at the terminal's width (unless ``wide``)."""
    width = None if wide else terminal_width()
    return text if width is None else textwrap.fill(text, width, break_on_hyphens=False)


def _fit(text: str, width: int) -> str:
    if len(text) <= width:
        return text.ljust(width)
    return text[: width - 1] + ELLIPSIS


def cell(value: Any) -> str:
    """Any value as a table cell: '-' for none, plain numbers without exponents, compact JSON."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def knob(value: Any) -> str:
    """A knob's value; an unset knob (beta_knob) means its feature (early stopping) is off."""
    return "off" if value is None else str(value)  # as given: 2.0, not 2


def number(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if abs(value) >= 100_000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _scaled(value: float, units: Sequence[tuple[float, str]]) -> str:
    """``value`` in the largest unit it reaches, with three significant digits."""
    scale, unit = units[0]
    for candidate_scale, candidate_unit in units:
        if abs(value) >= candidate_scale:
            scale, unit = candidate_scale, candidate_unit
    return f"{value / scale:.3g} {unit}"


def energy(joules: Any) -> str:
    """Joules (and costs, which are joules too) in J, kJ, MJ or GJ."""
    if joules is None:
        return "-"
    return _scaled(float(joules), [(1.0, "J"), (1e3, "kJ"), (1e6, "MJ"), (1e9, "GJ")])


def duration(seconds: Any) -> str:
    """Seconds in s, min or h."""
    if seconds is None:
        return "-"
    return _scaled(float(seconds), [(1.0, "s"), (60.0, "min"), (3600.0, "h")])


def instant(text: Any) -> str:
    """An ISO-8601 time as UTC to the second: 2024-05-01 12:00:07."""
    if text is None:
        return "-"
    moment = datetime.fromisoformat(str(text))
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    formats: Mapping[str, Format] | None = None,
    wide: bool = False,
) -> None:
    """Print ``rows`` under ``columns``; each column formatted by ``formats`` or ``cell``."""
    formats = formats or {}
    cells = [
        [cell(row.get(column)) if row.get(column) is None else formats.get(column, cell)(row.get(column)) for column in columns]
        for row in rows
    ]
    firm = [column in formats for column in columns]
    for line in table_lines(columns, cells, None if wide else terminal_width(), firm):
        print(line)
