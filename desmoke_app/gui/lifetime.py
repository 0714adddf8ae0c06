"""When the app's Qt objects are freed: on the GUI thread, never by a garbage collection
that happens to run on a worker thread.

Python's cycle collector runs in whichever thread allocates when its threshold is crossed,
and the export, reader and processor threads allocate the most (the export thread building
its network). A Qt object's wrapper in a reference cycle (a dialog whose signals are
connected to its own methods) was then freed there, touching Qt from outside the GUI
thread: the app crashed in 3 runs of 5 when an export was started from its dialog while a
clip played, and never with the collector off. So the app turns automatic collection off
and collects on a GUI-thread timer instead (GuiThreadCollector), and deletes its modal
dialogs once answered (dispose_dialog) rather than leaving them to the window, one more
kept with each use.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QDialog

#: How often the GUI thread looks whether a collection is due: often enough that garbage
#: never piles up (a generation-0 collection is due every few hundred allocations the
#: threads keep), rarely enough to cost nothing measurable.
COLLECT_INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    """Python's automatic garbage collection moved to the GUI thread: off while this runs,
    and on each tick of a timer the generations the interpreter would have collected by
    now (its own thresholds: gc.get_threshold) are collected here."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(COLLECT_INTERVAL_MS)
        self._timer.timeout.connect(self.collect_due)
        self._was_enabled = gc.isenabled()

    def start(self) -> None:
        gc.disable()
        self._timer.start()

    def stop(self) -> None:
        """Automatic collection back as it was before start."""
        self._timer.stop()
        if self._was_enabled:
            gc.enable()

    def collect_due(self) -> None:
        """Collect the oldest generation whose count has passed its threshold (and those
        younger), as the interpreter does on an allocation."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        due = [g for g in range(3) if counts[g] > thresholds[g]]
        if due and due[0] == 0:  # an older generation is only due after a younger one
            generation = 0
            while generation + 1 in due:
                generation += 1
            gc.collect(generation)


def dispose_dialog(dialog: QDialog) -> None:
    """Delete a closed modal dialog on the GUI thread's next turn (its values read first:
    after this the dialog may not be used)."""
    dialog.deleteLater()
