"""Stop a training run cleanly on SIGTERM / SIGINT (a pre-empted job, Ctrl-C): the signal is only recorded, the
trainer finishes the step it is in, writes a checkpoint and exits with 128 + the signal's number, so ``--resume``
continues from exactly that step."""

from __future__ import annotations

import signal
import threading

__all__ = ["StopOnSignal", "Interrupted"]


class Interrupted(SystemExit):
    """Raised by the trainer after the checkpoint an interrupting signal asked for; exit code 128 + signum."""

    def __init__(self, signum: int, step: int, checkpoint):
        super().__init__(128 + signum)
        self.signum, self.step, self.checkpoint = signum, step, checkpoint

    def __str__(self) -> str:
        return (f"interrupted by {signal.Signals(self.signum).name} at step {self.step}; checkpoint "
                f"{self.checkpoint} written: run again with --resume to continue")


class StopOnSignal:
    """Context manager: while active, SIGTERM and SIGINT set ``signum`` instead of killing the process (a second
    one of the same kind still stops it at once). Outside the main thread it does nothing."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.signum == signum:  # asked twice: stop now
            signal.signal(signum, self._old.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()
        return False
