"""A thread-safe LRU cache bounded by the total size of its values."""

import collections
import threading


class LruCache:
    """Keeps the most recently used values whose sizes add up to max_bytes.

    A value larger than max_bytes is not kept. Sizes are given by the caller
    (bytes of arrays and blobs), since Python cannot measure them cheaply.
    """

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._entries = collections.OrderedDict()  # key -> (value, size)
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key, value, size):
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= old[1]
            self._entries[key] = (value, size)
            self._size += size
            while self._size > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._size -= evicted

    @property
    def size(self):
        return self._size

    def __len__(self):
        return len(self._entries)
