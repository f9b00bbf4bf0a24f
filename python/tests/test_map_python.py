# SPDX-License-Identifier: MIT
"""brigade.map of Python callables in forked procs workers."""

from __future__ import annotations

import ctypes
import json
import os
import threading
import time

import numpy as np
import pytest

import brigade
from brigade import ItemError, ItemState

PROCS = ["procs", "procs-copy", "procs-persistent"]


@pytest.mark.parametrize("backend", PROCS)
def test_results_come_back_pickled(backend: str) -> None:
    offset = 1000  # seen by the fork, never pickled
    r = brigade.map(lambda i: {"i": i, "sq": i * i + offset}, 200, backend=backend, workers=2)
    assert r.ok and r.n_ok == 200
    assert r.results == [{"i": i, "sq": i * i + offset} for i in range(200)]


def test_items_and_an_out_array() -> None:
    words = [f"w{i}" for i in range(50)]
    r = brigade.map(str.upper, items=words, backend="procs")
    assert r.results == [w.upper() for w in words]
    out = np.zeros((30, 2))
    r = brigade.map(lambda i: (i, i / 2), 30, out, backend="procs")
    assert r.ok and r.results is None
    assert np.array_equal(out, np.stack([np.arange(30), np.arange(30) / 2], axis=1))


def misbehave(i: int) -> int:
    if i == 3:
        ctypes.string_at(0)  # SIGSEGV
    if i == 5:
        os._exit(9)
    if i == 8:
        time.sleep(600)
    if i == 11:
        raise KeyError("eleven")
    return i


def test_a_crash_an_exit_a_hang_and_an_exception_fail_only_their_items() -> None:
    r = brigade.map(misbehave, 20, backend="procs", workers=2, timeout=1.0)
    assert r.state[3] == ItemState.CRASHED
    assert r.state[5] == ItemState.EXITED and r.code[5] == 9
    assert r.state[8] == ItemState.TIMEOUT
    assert r.state[11] == ItemState.FAILED and r.code[11] == 1
    assert isinstance(r.results[11], ItemError) and "KeyError: 'eleven'" in str(r.results[11])
    assert "raise KeyError" in r.results[11].traceback
    good = [i for i in range(20) if i not in (3, 5, 8, 11)]
    assert [r.results[i] for i in good] == good and (r.state[good] == ItemState.OK).all()
    assert (r.n_ok, r.n_failed, r.first_failed) == (16, 4, 3)
    # The parent is whole afterwards: it imports, runs threads and maps again.
    t = threading.Thread(target=json.dumps, args=({},))
    t.start()
    t.join()
    assert brigade.map(lambda i: i, 10, backend="procs").results == list(range(10))


def test_a_result_larger_than_its_slot_fails_its_item() -> None:
    r = brigade.map(lambda i: b"x" * (i * 100), 3, backend="procs", result_size=150)
    assert r.results[0] == b"" and r.results[1] == b"x" * 100
    assert r.state[2] == ItemState.FAILED and r.code[2] == 2
    assert "larger result_size" in str(r.results[2])


def test_threads_are_refused() -> None:
    with pytest.raises(ValueError, match="procs backends"):
        brigade.map(lambda i: i, 10, backend="threads")


def test_another_python_thread_is_refused() -> None:
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        with pytest.raises(RuntimeError, match="one Python thread"):
            brigade.map(lambda i: i, 10, backend="procs")
    finally:
        stop.set()
        t.join()


def test_exceptions_are_retried_and_come_back_even_when_long() -> None:
    def raises(i: int) -> int:
        if i == 1:
            raise ValueError("x" * 10_000)
        return i

    r = brigade.map(raises, 4, backend="procs", retries=2, result_size=512)
    assert r.state[1] == ItemState.FAILED and r.code[1] == 1 and r.attempts[1] == 3
    assert isinstance(r.results[1], ItemError) and str(r.results[1]).startswith("ValueError: x")
    assert r.results[0] == 0 and r.results[3] == 3 and r.n_retries == 2


def test_a_thread_of_the_thread_module_is_refused_too() -> None:
    import _thread

    stop = threading.Event()
    done = threading.Event()

    def wait() -> None:
        stop.wait()
        done.set()

    _thread.start_new_thread(wait, ())
    try:
        with pytest.raises(RuntimeError, match="one Python thread"):
            brigade.map(lambda i: i, 10, backend="procs")
    finally:
        stop.set()
        done.wait()
        time.sleep(0.1)  # the thread ends after setting done


def test_a_nested_map_is_refused_in_its_item() -> None:
    r = brigade.map(lambda i: brigade.map(lambda j: j, 2, backend="procs"), 2, backend="procs")
    assert (r.state == ItemState.FAILED).all()
    assert "cannot run inside" in str(r.results[0])


def test_a_search_inside_an_item() -> None:
    db = np.random.default_rng(4).random((20_000, 64), dtype=np.float32)

    def search(i: int) -> list:
        return brigade.knn(db, db[i * 300 : (i + 1) * 300], metric="l2")[0][:, 0].tolist()

    r = brigade.map(search, 3, backend="procs", timeout=30)
    assert r.results == [list(range(i * 300, (i + 1) * 300)) for i in range(3)]


def test_a_search_after_os_fork_starts_its_own_pool() -> None:
    # brigade.knn keeps its pool of threads between calls; a child of os.fork() inherits the
    # pool without its threads, and must start its own instead of waiting for them.
    db = np.random.default_rng(5).random((20_000, 64), dtype=np.float32)
    assert brigade.knn(db, db[:300], metric="l2")[0][:, 0].tolist() == list(range(300))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        got = brigade.knn(db, db[300:600], metric="l2")[0][:, 0].tolist()
        os._exit(0 if got == list(range(300, 600)) else 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's search waited for the parent's threads")
    assert os.waitstatus_to_exitcode(status) == 0
