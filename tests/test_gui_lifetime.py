"""Qt objects are freed on the GUI thread: the app's garbage collection runs there, not in
the worker thread that happens to allocate (desmoke_app.gui.lifetime)."""

from __future__ import annotations

import gc
import threading

from desmoke_app.gui.lifetime import GuiThreadCollector


class Cycle:
    """Garbage only the cycle collector frees, saying on which thread it was freed."""

    freed_on: list[str] = []

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        Cycle.freed_on.append(threading.current_thread().name)


def test_garbage_is_collected_on_the_gui_thread_not_the_worker_allocating(qtbot) -> None:
    Cycle.freed_on = []
    kept: list[list] = []
    collector = GuiThreadCollector()
    collector.start()
    try:
        assert not gc.isenabled()

        def allocate() -> None:  # an export thread building its network, in miniature
            Cycle()
            kept.extend([] for _ in range(20 * gc.get_threshold()[0]))

        worker = threading.Thread(target=allocate, name="worker")
        worker.start()
        worker.join()
        assert Cycle.freed_on == []  # past the threshold, and nothing collected there
        qtbot.waitUntil(lambda: Cycle.freed_on == ["MainThread"], timeout=5000)
    finally:
        collector.stop()
    assert gc.isenabled()


def test_nothing_is_collected_before_it_is_due(qtbot) -> None:
    """A tick costs nothing while the interpreter would not have collected yet."""
    gc.collect()
    collector = GuiThreadCollector()
    collector.start()
    try:
        collections = gc.get_stats()[0]["collections"]
        collector.collect_due()
        assert gc.get_stats()[0]["collections"] == collections
    finally:
        collector.stop()
