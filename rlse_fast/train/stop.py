"""A clean stop on Ctrl-C or SIGTERM: the training loop finishes its step, writes its checkpoint,
samples and prior, then reports the interruption.

Without it an interrupt lands anywhere (in an optimiser step, between G and G_ema) and everything
since the last periodic checkpoint is lost. The first SIGINT or SIGTERM only asks the loop to stop
(`requested` holds its number); a second one interrupts at once, as Python's default does, which
still leaves the previous checkpoint whole (checkpoints are written atomically).
"""
from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A training run stopped by a signal after saving its state; str() says what was saved, and
    `exit_code` is the shell's for that signal (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + int(signum)


class StopOnSignal:
    """Context manager: while inside, SIGINT and SIGTERM set `requested` instead of interrupting.
    Outside the main thread (where Python cannot install handlers) it does nothing."""

    def __init__(self):
        self.requested: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.requested is not None:  # the second signal: stop now
            raise KeyboardInterrupt
        self.requested = signum

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.requested).name if self.requested is not None else ""


__all__ = ["Interrupted", "StopOnSignal"]
