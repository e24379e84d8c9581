"""An array of machine numbers whose copy costs almost nothing, however long it grows.

The aggregate cache copies a job for every command, and a job keeps one item per trial
in several arrays. A plain ``array`` copies all of its items; this one is split into
full chunks, which copies share and never change in place, and one partial tail, the
only part a copy duplicates. A write into a full chunk replaces it, in that copy only,
with a changed copy of the chunk.
"""

from array import array
from itertools import chain
from typing import Iterable, Iterator

CHUNK = 1024  # items per full chunk


class ChunkedArray:
    __slots__ = ("typecode", "_chunks", "_tail")

    def __init__(self, typecode: str, items: Iterable[int | float] = ()) -> None:
        self.typecode = typecode
        self._chunks: list[array] = []
        self._tail = array(typecode)
        self._extend(array(typecode, items))

    def _extend(self, items: array) -> None:
        start = 0
        while start < len(items):
            room = CHUNK - len(self._tail)
            self._tail.extend(items[start : start + room])
            start += room
            self._close_full_tail()

    def __len__(self) -> int:
        return len(self._chunks) * CHUNK + len(self._tail)

    def __iter__(self) -> Iterator[int | float]:
        return chain(*self._chunks, self._tail)

    def __getitem__(self, index: int) -> int | float:
        chunk, offset = divmod(self._position(index), CHUNK)
        return self._chunks[chunk][offset] if chunk < len(self._chunks) else self._tail[offset]

    def __setitem__(self, index: int, value: int | float) -> None:
        chunk, offset = divmod(self._position(index), CHUNK)
        if chunk == len(self._chunks):
            self._tail[offset] = value
            return
        changed = self._chunks[chunk][:]  # other copies may share the chunk
        changed[offset] = value
        self._chunks[chunk] = changed

    def _position(self, index: int) -> int:
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError("ChunkedArray index out of range")
        return position

    def append(self, value: int | float) -> None:
        self._tail.append(value)
        self._close_full_tail()

    def _close_full_tail(self) -> None:
        if len(self._tail) == CHUNK:
            self._chunks.append(self._tail)  # full: shared by copies from now on
            self._tail = array(self.typecode)

    def insert(self, index: int, value: int | float) -> None:
        """Insert before ``index``; costs the items after it (appending is the common case)."""
        first_moved = min(index, len(self)) // CHUNK
        moved = array(self.typecode)
        for chunk in self._chunks[first_moved:]:
            moved.extend(chunk)
        moved.extend(self._tail)
        moved.insert(index - first_moved * CHUNK, value)
        del self._chunks[first_moved:]
        self._tail = array(self.typecode)
        self._extend(moved)

    def count(self, value: int | float) -> int:
        return sum(chunk.count(value) for chunk in self._chunks) + self._tail.count(value)

    def to_array(self) -> array:
        """All items in one plain array (a new one)."""
        items = array(self.typecode)
        for chunk in self._chunks:
            items.extend(chunk)
        items.extend(self._tail)
        return items

    def tolist(self) -> list[int | float]:
        return self.to_array().tolist()

    def copy(self) -> "ChunkedArray":
        clone = object.__new__(ChunkedArray)
        clone.typecode = self.typecode
        clone._chunks = list(self._chunks)
        clone._tail = self._tail[:]
        return clone

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChunkedArray):
            return NotImplemented
        return self.typecode == other.typecode and self.to_array() == other.to_array()

    def __repr__(self) -> str:
        return f"ChunkedArray({self.typecode!r}, {self.tolist()!r})"
