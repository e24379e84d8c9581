"""Rendered ``/v1`` answers about one job, kept by the job's stream version.

A job's views change only when its stream does, so the JSON bytes of an answer
can be served again for as long as the job's newest version is the one they were
rendered at: a repeated read of an unchanged job costs one indexed query (the
newest version) and no decoding or rendering. Bounded by total bytes, least
recently used first out.
"""

import threading
from collections import OrderedDict
from typing import Callable, Hashable

DEFAULT_MAX_BYTES = 64 * 2**20


class RenderedViews:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[Hashable, tuple[Hashable, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_render(self, key: Hashable, version: Hashable, render: Callable[[], bytes]) -> bytes:
        """The answer for ``key`` rendered at ``version`` (the job's UUID and stream version: a job id
        registered again is another stream), rendering it (outside the lock) if absent."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version:
                self._entries.move_to_end(key)
                return entry[1]
        body = render()
        self._keep(key, version, body)
        return body

    def _keep(self, key: Hashable, version: Hashable, body: bytes) -> None:
        if len(body) > self._max_bytes // 4:
            return  # one answer must not push out everything else
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= len(previous[1])
            self._entries[key] = (version, body)
            self._bytes += len(body)
            while self._bytes > self._max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= len(evicted)
