"""The watched folder's wake-up: filesystem events wake the loop at once, polling stays the
fallback, and a stop request ends the wait."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from lvo_triage.config import ConfigError, load_settings
from lvo_triage.service.events import Wakeup
from lvo_triage.service.inbox import Inbox


def _write_later(path: Path, delay_s: float) -> threading.Thread:
    def write() -> None:
        time.sleep(delay_s)
        path.write_bytes(b"DICM")

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def test_a_new_file_wakes_the_loop_before_the_poll_interval(tmp_path: Path) -> None:
    Inbox(tmp_path).create()
    wakeup = Wakeup(tmp_path, events=True, stop_event=threading.Event())
    try:
        assert wakeup.events
        assert wakeup.wait(0.3) == "timeout"  # nothing arrived
        (tmp_path / "sub").mkdir()
        wakeup.wait(0.3)  # the folder's own event, if any
        writer = _write_later(tmp_path / "sub" / "a.dcm", 0.3)
        woke_by = wakeup.wait(600.0)  # a missed event would end only after the poll interval
        writer.join()
        assert woke_by == "file", "the file event was missed"
    finally:
        wakeup.close()


def test_work_areas_do_not_wake_the_loop(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    inbox.create()
    wakeup = Wakeup(tmp_path, events=True, stop_event=threading.Event())
    try:
        wakeup.wait(0.1)  # events from creating the work areas, if any
        writer = _write_later(inbox.archive / "done.dcm", 0.1)
        woke_by = wakeup.wait(0.8)
        writer.join()
        assert woke_by == "timeout", "a file moved to .archive woke the loop"
    finally:
        wakeup.close()


def test_without_events_it_polls_and_a_stop_ends_the_wait(tmp_path: Path) -> None:
    stop = threading.Event()
    wakeup = Wakeup(tmp_path, events=False, stop_event=stop)
    assert not wakeup.events
    writer = _write_later(tmp_path / "a.dcm", 0.05)
    assert wakeup.wait(0.4) == "timeout"  # polling: a new file does not end the wait
    writer.join()
    threading.Timer(0.1, stop.set).start()
    assert wakeup.wait(600.0) == "stop"


def test_events_setting_must_be_a_boolean(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("watch:\n  events: 'no'\n")
    with pytest.raises(ConfigError, match=r"watch\.events must be true or false"):
        load_settings(config)
    config.write_text("watch:\n  events: false\n")
    assert load_settings(config).watch.events is False
