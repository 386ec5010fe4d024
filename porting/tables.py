"""Tables that fit the terminal without ever cutting a name. Needs rich only.

rich shrinks a table that is too wide by cutting its cells (`features.bloc…`). A `Fitted` table is laid out
when it is printed, for the console's width, and never cuts: a name (a layer, a MindSpore cell, a spec, a
tensor, a number) stays whole on one line; prose wraps between words. It tries, in order:

1. every column side by side;
2. each `under=` column moved into the cell of the column it names, as a second line (layer over its cell);
3. then the `drop=` columns left out, 1 first (a caption says which);
4. records: per row its key (`key=`, else the first column) on a line, then `header: value` fields, packed;
   nothing left out.

Only a name longer than the whole terminal is folded onto the next line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

PADDING = 1  # rich's default cell padding, each side
INDENT = "  "  # a record's fields, under its key
FIELD_GAP = "   "  # between two fields of a record on one line


@dataclass(frozen=True)
class Column:
    header: str
    justify: Literal["left", "right"] = "left"
    prose: bool = False  # may wrap between words; any other cell keeps each of its lines on one line
    under: str | None = None  # when narrow, a second line in the cells of the column with this header
    drop: int = 0  # when narrow, left out: 1 first, then 2...; 0: always shown


@dataclass
class Fitted:
    """A table laid out at print time for the console's width. Cells are rich markup (escape names)."""

    title: str
    columns: list[Column]
    rows: list[list[Text]] = field(default_factory=list)
    dropped_hint: str = ""  # appended to the caption that names the columns left out
    key: str = ""  # the header of the column that heads each record (default: the first)

    def add_row(self, *cells: str) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([Text.from_markup(c) for c in cells])

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        droppable = sorted({c.drop for c in self.columns if c.drop})
        for stacked in (False, True):
            for dropped in range(len(droppable) + 1 if stacked else 1):
                table = self._table(width, stacked, set(droppable[:dropped]))
                if table is not None:
                    yield table
                    return
        yield from self._records(width)

    # ------------------------------------------------------------------------------------------ a table

    def _table(self, width: int, stacked: bool, dropped_levels: set[int]) -> Table | None:
        """The table with these columns, or None where some name would not fit whole."""
        shown = [i for i, c in enumerate(self.columns) if c.drop not in dropped_levels]
        by_header = {self.columns[i].header: i for i in shown}
        cells_of: dict[int, list[int]] = {}  # a column -> the columns shown in its cells, itself first
        for i in shown:
            above = by_header.get(self.columns[i].under) if stacked else None
            home = above if above is not None and not self.columns[above].under else i
            cells_of.setdefault(home, []).append(i)
        groups = [cells_of[home] for home in sorted(cells_of)]

        headers = [Text("\n".join(self.columns[i].header for i in g)) for g in groups]
        cells = [[_stack([row[i] for i in g]) for g in groups] for row in self.rows]
        prose = [any(self.columns[i].prose for i in g) for g in groups]
        least, body, most = [], [], []  # per column: its narrowest width, its cells' widest line, its header's
        for k, group in enumerate(groups):
            column_cells = [cells_row[k] for cells_row in cells]
            least.append(max([_longest_word(headers[k])] + [_least_width(c, prose[k]) for c in column_cells]))
            body.append(max([least[k]] + [_longest_line(c) for c in column_cells]))
            most.append(max(body[k], _longest_line(headers[k])))
        chrome = (2 * PADDING + 1) * len(groups) + 1  # padding, one rule between and the two edges
        room = width - chrome
        if sum(least) > room:
            return None
        widths = _share(_share(least, body, room), most, room)  # the cells' room first, then the headers'

        dropped = [self.columns[i].header for i in range(len(self.columns)) if i not in shown]
        caption = None
        if dropped:
            caption = Text(f"not shown at {width} columns: {', '.join(dropped)}"
                           + (f" ({self.dropped_hint})" if self.dropped_hint else ""), justify="left")
        title_word = max((cell_len(w) for w in self.title.split()), default=0)  # the title's names stay whole too
        table = Table(title=Text(self.title, overflow="fold"), caption=caption, min_width=min(width, title_word))
        for k, group in enumerate(groups):
            table.add_column(_wrapped(headers[k], widths[k]), justify=self.columns[group[0]].justify,
                             width=widths[k], no_wrap=not prose[k], overflow="fold")
        for row in cells:
            table.add_row(*row)
        return table

    # ------------------------------------------------------------------------------------------ records

    def _records(self, width: int) -> RenderResult:
        """Per row: its key, then the other columns as `header: value` fields."""
        yield Text(self.title, style="table.title", overflow="fold")
        room = width - cell_len(INDENT)
        first = next((k for k, c in enumerate(self.columns) if c.header == self.key), 0)
        for row in self.rows:
            key = row[first].copy()
            key.stylize("bold")
            yield _as_packed(key)
            lines: list[Text] = []
            wrapped = False
            for k, (column, value) in enumerate(zip(self.columns, row)):
                if k != first and value.plain.strip():
                    wrapped = _pack(lines, column, value, room, new_line=wrapped)
            for line in lines:
                yield _as_packed(Text.assemble(INDENT, line))


# ---------------------------------------------------------------------------------------------- measuring

def _stack(parts: list[Text]) -> Text:
    return Text("\n").join(parts) if len(parts) > 1 else parts[0]


def _longest_line(text: Text) -> int:
    return max((cell_len(line) for line in text.plain.split("\n")), default=0)


def _longest_word(text: Text) -> int:
    return max((cell_len(word) for word in text.plain.split()), default=0)


def _least_width(text: Text, prose: bool) -> int:
    return _longest_word(text) if prose else _longest_line(text)


def _share(least: list[int], most: list[int], room: int) -> list[int]:
    """Widths from `least` towards `most` within `room`: the spare columns go, one at a time, to the narrowest
    column still short of its `most` (a short column gets all it needs before a long one wraps less)."""
    widths = list(least)
    for _ in range(max(0, room - sum(widths))):
        short = [k for k in range(len(widths)) if widths[k] < most[k]]
        if not short:
            break
        widths[min(short, key=lambda k: widths[k])] += 1
    return widths


def _wrapped(text: Text, width: int) -> Text:
    """`text` broken between words into lines of `width` (rich would cut a header in a column that keeps its
    cells on one line)."""
    lines = []
    for line in text.plain.split("\n"):
        words = line.split()
        current = ""
        for word in words:
            if current and cell_len(current) + 1 + cell_len(word) > width:
                lines.append(current)
                current = word
            else:
                current = f"{current} {word}" if current else word
        lines.append(current)
    return Text("\n".join(lines))


def _as_packed(text: Text) -> Text:
    """A line already packed to fit: rich leaves it as it is (only a name wider than the terminal folds)."""
    text.overflow = "fold"
    return text


def _pack(lines: list[Text], column: Column, value: Text, room: int, new_line: bool) -> bool:
    """Append one field to a record's lines, `header: value`: on the current line if it fits there (and not
    `new_line`), else from a new one, prose wrapped between words. True where it wrapped (the next field then
    starts a line of its own, not inside a paragraph)."""
    label = Text(f"{column.header}: ", style="dim") if column.header else Text("")
    pieces = value.split("\n")
    words = [w for piece in pieces for w in _words(piece)] if column.prose else list(pieces)
    whole = Text.assemble(label, Text(" ").join(words))
    if lines and not new_line and cell_len(lines[-1].plain) + cell_len(FIELD_GAP) + cell_len(whole.plain) <= room:
        lines[-1] = Text.assemble(lines[-1], FIELD_GAP, whole)
        return False
    if cell_len(whole.plain) <= room:
        lines.append(whole)
        return False
    first = Text.assemble(label, words[0])
    if cell_len(first.plain) <= room:
        lines.append(first)
    else:  # a label and its name that do not fit one line: the name on a line of its own
        lines += [label.copy().rstrip(), words[0]] if label.plain else [words[0]]
    for word in words[1:]:
        if cell_len(lines[-1].plain) + 1 + cell_len(word.plain) <= room:
            lines[-1] = Text.assemble(lines[-1], " ", word)
        else:
            lines.append(word)
    return True


def _words(text: Text) -> list[Text]:
    """The whitespace-separated words of `text`, with their styles."""
    words, start = [], None
    plain = text.plain
    for i, ch in enumerate(plain + " "):
        if ch.isspace():
            if start is not None:
                words.append(text[start:i])
                start = None
        elif start is None:
            start = i
    return words
