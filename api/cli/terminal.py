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
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int | None,
    firm: Sequence[bool] = (),
    whole: Sequence[bool] = (),
) -> list[str]:
    """Left-aligned columns; when wider than ``width``, the widest columns are cut with an ellipsis.

    Columns marked ``firm`` (numbers with units, times) are cut only once the others are as
    narrow as they go: free text loses its tail more gracefully. Columns marked ``whole``
    (ids, trial numbers) are never cut, since a cut id cannot be copied into the next
    command: a value wider than its column gets a line of its own, above the rest of its row.
    """
    count = len(headers)
    firm = list(firm) or [False] * count
    whole = list(whole) or [False] * count
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]
    if width is not None:
        room = width - len(_GAP) * (count - 1)
        free = [not (is_firm or is_whole) for is_firm, is_whole in zip(firm, whole)]
        cuttable = [not is_whole for is_whole in whole]
        whole_floors = [_least_width(header, [row[i] for row in rows], width, True) for i, header in enumerate(headers)]
        widths = _narrowed(widths, room, whole, whole_floors)  # long ids wrap before text is cut
        widths = _narrowed(widths, room, free, _floors(widths))
        widths = _narrowed(widths, room, cuttable, _floors(widths))
        widths = _narrowed(widths, room, whole, [len(header) for header in headers])  # every id may wrap
        widths = [
            _longest_within(headers[i], [row[i] for row in rows], column_width) if whole[i] else column_width
            for i, column_width in enumerate(widths)
        ]
    return [text for line in [list(headers), *rows] for text in _row_lines(line, widths, whole)]


def _least_width(header: str, cells: Sequence[str], width: int, whole: bool) -> int:
    """How wide a column is kept before a table drops columns: in full, or an id column wrapped."""
    if whole:
        return _longest_within(header, cells, _whole_floor(header, width))
    return max([len(header), *map(len, cells)])


def _whole_floor(header: str, width: int) -> int:
    """An id column keeps a quarter of the width before other columns are cut for it."""
    return max(len(header), width // 4)


def _floors(widths: Sequence[int]) -> list[int]:
    return [min(width, _NARROWEST) for width in widths]


def _narrowed(widths: list[int], room: int, cuttable: Sequence[bool], floors: Sequence[int]) -> list[int]:
    widths = list(widths)
    while sum(widths) > room:
        candidates = [i for i, width in enumerate(widths) if cuttable[i] and width > floors[i]]
        if not candidates:
            break  # as narrow as these go
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _longest_within(header: str, cells: Sequence[str], width: int) -> int:
    """A whole column no wider than the longest value that fits it (the others wrap anyway)."""
    return max([len(header), *(len(text) for text in cells if len(text) <= width)])


def _row_lines(cells: Sequence[str], widths: Sequence[int], whole: Sequence[bool]) -> list[str]:
    """One row; each whole value too wide for its column first, alone on a line at its column."""
    starts = [sum(widths[:i]) + len(_GAP) * i for i in range(len(widths))]
    wrapped = [i for i, text in enumerate(cells) if whole[i] and len(text) > widths[i]]
    above = [" " * starts[i] + cells[i] for i in wrapped]
    rest = ["" if i in wrapped else text for i, text in enumerate(cells)]
    return [*above, _GAP.join(_fit(text, column_width) for text, column_width in zip(rest, widths)).rstrip()]


def clipped(line: str, wide: bool = False) -> str:
    """One line cut to the terminal's width (unless ``wide``)."""
    width = None if wide else terminal_width()
    return line if width is None else _fit(line, width).rstrip()


def wrapped(text: str, wide: bool = False, indent: int = 0) -> str:
    """Prose wrapped at the terminal's width (unless ``wide``), its later lines ``indent`` in."""
    width = None if wide else terminal_width()
    if width is None:
        return text
    return textwrap.fill(text, width, subsequent_indent=" " * indent, break_on_hyphens=False)


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
    whole: Sequence[str] = (),
    droppable: Sequence[str] = (),
) -> None:
    """Print ``rows`` under ``columns``; each column formatted by ``formats`` or ``cell``.

    ``whole`` columns are never cut (see ``table_lines``). When the table does not fit
    uncut, the ``droppable`` columns go, first named first, before any cell is cut: a table
    with fewer columns reads better than one with every cell cut to a few characters.
    """
    formats = formats or {}
    cells = {
        column: [cell(row.get(column)) if row.get(column) is None else formats.get(column, cell)(row.get(column)) for row in rows]
        for column in columns
    }
    width = None if wide else terminal_width()
    shown = _fitting(columns, cells, width, whole, droppable)
    lines = table_lines(
        shown,
        [[cells[column][i] for column in shown] for i in range(len(rows))],
        width,
        [column in formats for column in shown],
        [column in whole for column in shown],
    )
    for line in lines:
        print(line)


def _fitting(
    columns: Sequence[str],
    cells: Mapping[str, Sequence[str]],
    width: int | None,
    whole: Sequence[str],
    droppable: Sequence[str],
) -> list[str]:
    """The columns left once the droppable ones the width cannot hold are gone."""
    shown = list(columns)
    if width is None:
        return shown
    for column in droppable:
        least = sum(_least_width(name, cells[name], width, name in whole) for name in shown)
        if least + len(_GAP) * (len(shown) - 1) <= width:
            break
        shown.remove(column)
    return shown
