"""The collector pause around large responses: nested and concurrent pauses, and the state it restores."""

from __future__ import annotations

import gc
import threading

from fermion import memory


def test_pause_nests_and_restores_the_collector() -> None:
    assert gc.isenabled()
    with memory.gc_paused():
        assert not gc.isenabled()
        with memory.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()


def test_pause_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with memory.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_pauses_from_threads_resume_only_after_the_last() -> None:
    inside, release = threading.Barrier(2), threading.Event()
    seen: list[bool] = []

    def worker() -> None:
        with memory.gc_paused():
            inside.wait()
            release.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    with memory.gc_paused():
        inside.wait()
    seen.append(gc.isenabled())  # this thread's pause ended; the worker's has not
    release.set()
    t.join(5)
    seen.append(gc.isenabled())
    assert seen == [False, True]


def test_pause_ends_when_the_body_raises() -> None:
    try:
        with memory.gc_paused():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()
