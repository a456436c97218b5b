"""A pool of reusable things (Lambda execution environments, model workers)
handed out first come, first served.

queue.Queue is not fair: an item put back wakes the longest waiter, but a
thread that arrives meanwhile takes the item first, and the woken one waits
again at the back of the line. Under load that turns the tail latency into a
lottery (at 16 concurrent requests on the local stack, p99 136 ms against
p50 49 ms). Here an item put back goes straight to the longest waiter; a
newcomer only gets an item when nobody is waiting.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Generic, Iterable, TypeVar

T = TypeVar("T")


class PoolClosed(RuntimeError):
    """The pool was closed before an item could be handed out."""


class _Waiter:
    __slots__ = ("ready", "item", "closed")

    def __init__(self):
        self.ready = threading.Event()
        self.item = None
        self.closed = False


class FairPool(Generic[T]):
    """Thread-safe. Idle items are handed out most recently returned first
    (the warmest); items put back as `spare` go to the bottom."""

    def __init__(self, items: Iterable[T] = ()):
        self._items: list[T] = list(items)
        self._waiting: deque[_Waiter] = deque()
        self._lock = threading.Lock()
        self._closed = False

    def get(self) -> T:
        """An idle item, or wait in line for one; PoolClosed once closed."""
        with self._lock:
            if self._closed:
                raise PoolClosed("the pool is closed")
            if self._items:  # nobody waits while there are idle items
                return self._items.pop()
            waiter = _Waiter()
            self._waiting.append(waiter)
        waiter.ready.wait()
        if waiter.closed:
            raise PoolClosed("the pool is closed")
        return waiter.item

    def put(self, item: T, spare: bool = False) -> bool:
        """Give an item back: to the longest waiter, else to the idle items.
        False if the pool is closed (the item is the caller's to dispose of)."""
        with self._lock:
            if self._closed:
                return False
            if self._waiting:
                waiter = self._waiting.popleft()
                waiter.item = item
                waiter.ready.set()
            elif spare:
                self._items.insert(0, item)
            else:
                self._items.append(item)
            return True

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def close(self) -> list[T]:
        """Refuse further gets, wake every waiter with PoolClosed and return
        the idle items."""
        with self._lock:
            self._closed = True
            items, self._items = self._items, []
            waiting, self._waiting = list(self._waiting), deque()
        for waiter in waiting:
            waiter.closed = True
            waiter.ready.set()
        return items
