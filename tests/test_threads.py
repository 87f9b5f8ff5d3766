"""Threads: the generator's single-thread step narrows only its own thread."""

from __future__ import annotations

import threading

import pytest
import torch

from maskengine.threads import _openmp, set_process_threads, single_threaded


def test_single_threaded_leaves_other_threads_and_the_process_alone():
    if _openmp() is None:
        pytest.skip("torch's OpenMP runtime is not reachable here")
    saved = torch.get_num_threads()
    torch.set_num_threads(2)  # whatever earlier tests left
    try:
        _check_single_threaded(2)
    finally:
        torch.set_num_threads(saved)


def _check_single_threaded(before: int) -> None:
    seen: dict[str, int] = {}
    inside, done = threading.Event(), threading.Event()

    def worker() -> None:
        with single_threaded():
            seen["inside"] = torch.get_num_threads()
            inside.set()
            done.wait(10)
        seen["after"] = torch.get_num_threads()

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(10)
    seen["main_meanwhile"] = torch.get_num_threads()
    fresh = threading.Thread(target=lambda: seen.__setitem__("new_thread", torch.get_num_threads()))
    fresh.start()
    fresh.join()
    done.set()
    t.join()
    assert seen == {"inside": 1, "main_meanwhile": before, "new_thread": before,
                    "after": before}
    assert torch.get_num_threads() == before


def test_set_process_threads():
    before = torch.get_num_threads()
    try:
        set_process_threads(1)
        assert torch.get_num_threads() == 1
        set_process_threads(0)  # keeps the setting
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError):
            set_process_threads(-1)
    finally:
        torch.set_num_threads(before)
