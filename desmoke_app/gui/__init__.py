"""The desktop app (PySide6): three synchronised panes, playback, live capture, export, plots.

Threads: a reader (decode + pacing), a processor (Desmoker) and a recorder each own one
small QObject moved to its own QThread (reader.py, processor.py, recorder.py; started and
stopped together by workers.py); the GUI thread only paints.
"""
