"""Ctrl-C and SIGTERM stop a run cleanly: finish the optimizer step, checkpoint, exit 1.

Schedulers and cluster managers (Slurm, Kubernetes, ``timeout``) send SIGTERM, a terminal sends
SIGINT; both become a request that the loop honours between two optimizer steps, so the
checkpoint it writes is a consistent one. A second Ctrl-C stops at once (``KeyboardInterrupt``).
DataLoader workers ignore both signals and leave the decision to the main process; a worker
killed by a terminal's Ctrl-C would otherwise fail the main process's next batch.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager: ``.signal`` names the first stop signal received (``"SIGTERM"``), else None.

    A ``KeyboardInterrupt`` that escapes the block is absorbed and recorded as ``"SIGINT"``.
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> bool:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):  # raised inside a step, or 2nd Ctrl-C
            self.signal = self.signal or "SIGINT"
            return True  # the loop saves a checkpoint and reports the stop
        return False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now
        if self.signal is None:
            self.signal = signal.Signals(signum).name
            if os.environ.get("RANK", "0") == "0":  # under `accelerate launch` every process gets it: say it once
                print(f"\n{self.signal}: stopping after this step and saving a checkpoint", file=sys.stderr, flush=True)


def ignore_stop_signals(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: workers leave SIGINT/SIGTERM to the main process."""
    del worker_id
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
