"""critic/local/pool.py: the first-come-first-served pool behind the local Lambda
environments and the model workers."""
from __future__ import annotations

import threading
import time

import pytest

from critic.local.pool import FairPool, PoolClosed


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.002)


def test_an_item_put_back_goes_to_the_longest_waiter_before_any_newcomer():
    pool = FairPool(["worker"])
    order: list[str] = []

    def take(name: str) -> None:
        item = pool.get()
        order.append(name)
        pool.put(item)

    held = pool.get()
    waiters = []
    for count, name in enumerate(["first", "second", "third"], start=1):
        waiters.append(threading.Thread(target=take, args=(name,)))
        waiters[-1].start()
        wait_for(lambda: pool.waiting() == count)
    pool.put(held)
    take("newcomer")  # arrives after the three: served after them
    for waiter in waiters:
        waiter.join(5)
    assert order == ["first", "second", "third", "newcomer"]


def test_idle_items_go_out_warmest_first_and_spares_last():
    pool = FairPool([None, None])
    pool.put("warm")
    pool.put(None, spare=True)
    assert [pool.get(), pool.get(), pool.get(), pool.get()] == ["warm", None, None, None]


def test_closing_wakes_every_waiter_and_returns_the_idle_items():
    pool = FairPool()
    outcomes: list[str] = []

    def take() -> None:
        try:
            pool.get()
            outcomes.append("got")
        except PoolClosed:
            outcomes.append("closed")

    threads = [threading.Thread(target=take) for _ in range(3)]
    for thread in threads:
        thread.start()
    wait_for(lambda: pool.waiting() == 3)
    assert pool.close() == []
    for thread in threads:
        thread.join(5)
    assert outcomes == ["closed"] * 3
    assert pool.put("late") is False  # the caller disposes of it
    with pytest.raises(PoolClosed):
        pool.get()
    pool2 = FairPool(["a", "b"])
    assert sorted(pool2.close()) == ["a", "b"]
