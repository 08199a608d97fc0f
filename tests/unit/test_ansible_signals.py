"""Signals during a play (labctl/ansible.py): ansible-runner is given a cancel callback, so it
never installs handlers of its own, and the process's handlers are back afterwards."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from labctl.ansible import cancel_on_signals


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_the_play_cancels_it_and_the_handlers_come_back(
    sig: signal.Signals,
) -> None:
    seen: list[int] = []

    def before(signum: int, frame: Any) -> None:
        seen.append(signum)

    old = signal.signal(sig, before)
    try:
        with cancel_on_signals() as stop:
            assert not stop.is_set()
            os.kill(os.getpid(), sig)  # handled in this (main) thread before kill returns
            assert stop.is_set() and seen == []
        assert signal.getsignal(sig) is before
        os.kill(os.getpid(), sig)
        assert seen == [sig]
    finally:
        signal.signal(sig, old)


def test_outside_the_main_thread_nothing_is_installed() -> None:
    got: list[bool] = []
    handler = signal.getsignal(signal.SIGINT)

    def worker() -> None:
        with cancel_on_signals() as stop:
            got.append(stop.is_set())
            got.append(signal.getsignal(signal.SIGINT) is handler)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert got == [False, True]


def test_a_control_folder_refilled_while_it_goes_is_removed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cut play may open an SSH master in the folder while it is removed: the first removal
    then leaves it (the campaign found an empty labctl-cp-* left), the next one takes it."""
    import shutil

    from labctl import ansible

    folder = tmp_path / "labctl-cp-x"
    folder.mkdir()
    real_rmtree = shutil.rmtree
    calls = []

    def rmtree_racing(path: Path, ignore_errors: bool = False) -> None:
        real_rmtree(path, ignore_errors=ignore_errors)
        calls.append(path)
        if len(calls) == 1:  # a late master made its socket's folder entry again
            folder.mkdir()
            (folder / "late").write_text("")

    monkeypatch.setattr(shutil, "rmtree", rmtree_racing)
    ansible.close_control_masters(folder)
    assert not folder.exists() and len(calls) == 2
