"""The agents' coalescing work queue: dirty keys are handled once however often they are marked, a full
resync absorbs pending keys, an idle wait ends in a periodic full resync, and close ends the worker."""

from __future__ import annotations

import threading
import time
from typing import Any

from fermion.agent.workqueue import WorkQueue

SHORT = 0.05


def take_in_thread(queue: WorkQueue, timeout: float) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append((queue.take(timeout), time.monotonic())), daemon=True)
    t.start()
    return t, out


def test_the_same_key_many_times_is_taken_once() -> None:
    q = WorkQueue()
    for _ in range(100):
        q.add(["net-1"])
    q.add(["net-1", "net-1"])
    assert q.take(SHORT) == (False, {"net-1"})
    # nothing is left: the next take waits and ends in a periodic full resync
    assert q.take(SHORT) == (True, set())


def test_different_keys_are_taken_together() -> None:
    q = WorkQueue()
    q.add(["net-1"])
    q.add(["net-2", "net-3"])
    q.add(iter(["net-1", "net-4"]))
    assert q.take(SHORT) == (False, {"net-1", "net-2", "net-3", "net-4"})


def test_add_full_absorbs_pending_keys() -> None:
    q = WorkQueue()
    q.add(["net-1", "net-2"])
    q.add_full()
    q.add(["net-3"])
    q.add_full()
    full, _keys = q.take(SHORT) or (None, None)
    assert full is True
    # the keys were covered by the full resync: nothing is pending afterwards
    started = time.monotonic()
    assert q.take(SHORT) == (True, set())
    assert time.monotonic() - started >= SHORT * 0.8


def test_keys_added_after_a_take_are_new_work() -> None:
    q = WorkQueue()
    q.add_full()
    assert q.take(SHORT) is not None
    q.add(["net-1"])
    assert q.take(SHORT) == (False, {"net-1"})


def test_take_timeout_means_a_periodic_full_resync() -> None:
    q = WorkQueue()
    started = time.monotonic()
    assert q.take(SHORT) == (True, set())
    assert time.monotonic() - started >= SHORT * 0.8


def test_take_returns_at_once_when_work_is_pending() -> None:
    q = WorkQueue()
    q.add(["net-1"])
    started = time.monotonic()
    assert q.take(30) == (False, {"net-1"})
    assert time.monotonic() - started < 5


def test_a_waiting_take_wakes_up_on_add() -> None:
    q = WorkQueue()
    t, out = take_in_thread(q, 30)
    time.sleep(SHORT)
    added = time.monotonic()
    q.add(["net-1"])
    t.join(10)
    assert not t.is_alive()
    (result, returned), = out
    assert result == (False, {"net-1"})
    assert returned - added < 5


def test_a_waiting_take_wakes_up_on_add_full() -> None:
    q = WorkQueue()
    t, out = take_in_thread(q, 30)
    time.sleep(SHORT)
    q.add_full()
    t.join(10)
    assert not t.is_alive()
    assert out[0][0] == (True, set())


def test_close_returns_none() -> None:
    q = WorkQueue()
    assert not q.closed
    q.add(["net-1"])
    q.add_full()
    q.close()
    assert q.closed
    started = time.monotonic()
    assert q.take(30) is None
    assert q.take(30) is None
    assert time.monotonic() - started < 5


def test_close_wakes_a_waiting_take() -> None:
    q = WorkQueue()
    threads = [take_in_thread(q, 30) for _ in range(3)]
    time.sleep(SHORT)
    q.close()
    for t, out in threads:
        t.join(10)
        assert not t.is_alive()
        assert out[0][0] is None


def test_concurrent_adds_are_all_taken_exactly_once() -> None:
    q = WorkQueue()
    keys = [f"net-{i}" for i in range(200)]

    def producer(part: list[str]) -> None:
        for k in part:
            q.add([k])
            q.add([k])

    producers = [threading.Thread(target=producer, args=(keys[i::4],)) for i in range(4)]
    for t in producers:
        t.start()
    taken: list[str] = []
    deadline = time.monotonic() + 10
    while len(set(taken)) < len(keys) and time.monotonic() < deadline:
        job = q.take(SHORT)
        assert job is not None
        full, got = job
        if not full:
            taken.extend(got)
    for t in producers:
        t.join(10)
    # every key at least once; the duplicates coalesced unless taken in between (never more than twice)
    assert set(taken) == set(keys)
    assert all(taken.count(k) <= 2 for k in keys)
