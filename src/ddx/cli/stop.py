"""Stopping on a signal: SIGINT, SIGTERM and SIGHUP end ddx the same clean way.

``StopSignals`` makes the first of them raise ``Stopped`` in the main thread,
so that the command line leaves by its ordinary path: the commands the probes
started are killed (``ddx.host.live.kill_children``), one line says why, and
the exit status is 128 + the signal's number. Every later signal, and any
signal once ddx is cleaning up (``quiet``), is only noted: a flood of signals
cannot interrupt the cleanup. Once ddx was stopped, the stop signals are
ignored until it has exited.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

__all__ = ["STOP_SIGNALS", "StopSignals", "Stopped"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """ddx was asked to stop by a signal (a BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class StopSignals:
    """The stop signals, caught while ddx runs one command. Only the main thread
    can catch signals; elsewhere this changes nothing. A signal ignored when ddx
    started (``nohup``) stays ignored."""

    def __init__(self) -> None:
        self.saved: dict[int, Any] = {}
        self.raised = False
        self.noted = False
        self.leaving = False
        if threading.current_thread() is not threading.main_thread():
            return
        for s in STOP_SIGNALS:
            old = signal.getsignal(s)
            if old is not signal.SIG_IGN:
                self.saved[s] = old
                signal.signal(s, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.raised or self.leaving:
            self.noted = True
            return
        self.raised = True
        raise Stopped(signum)

    def quiet(self) -> None:
        """From now on a stop signal is only noted (ddx is cleaning up)."""
        self.leaving = True

    def restore(self) -> None:
        """Put the handlers back as they were, unless a stop signal came: then
        the process is leaving, and the stop signals are ignored from here on
        (the interpreter would put back their default action while it shuts
        down, and a late signal of a flood would kill it with that status)."""
        if not (self.raised or self.noted):
            for s, old in self.saved.items():
                signal.signal(s, old)
            return
        previous = sys.unraisablehook

        def hook(info: Any) -> None:  # a signal already received when its handler became SIG_IGN
            if not (isinstance(info.exc_value, OSError) and "ignored due to race condition" in str(info.exc_value)):
                previous(info)

        sys.unraisablehook = hook
        for s in self.saved:
            signal.signal(s, signal.SIG_IGN)
