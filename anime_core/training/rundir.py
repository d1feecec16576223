"""The run directory: its config, a unique default name, and an exclusive lock while a run uses it.

Two ``anime train`` on one folder would mix their checkpoints, config and metrics, so the main
process holds an ``flock`` on ``<run>/.lock`` (which records its PID) for the whole run; a
second one gets an error naming that PID. Default names are ``runs/MODEL-DATE-TIME`` plus
``-2``, ``-3``... when a run started in the same second already took the name (``mkdir`` is the
arbiter). Under ``accelerate launch`` the main process decides and the others follow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from anime_core import config as cfglib
from anime_core.errors import AnimeError, UsageError
from anime_core.specs import ModelSpec
from anime_core.training import checkpoint

try:
    import fcntl
except ImportError:  # Windows: runs are not locked there
    fcntl = None  # type: ignore[assignment]

CONFIG_NAME = "config.yaml"
LOCK_NAME = ".lock"


@dataclass(frozen=True)
class Run:
    """Where a run writes, what it resumes from, and the number of its next checkpoint folder."""

    dir: Path
    resume_from: checkpoint.Checkpoint | None
    next_checkpoint: int


def run_config(
    spec: ModelSpec, config: str | Path | None, overrides: list[str] | tuple[str, ...], resume: str | Path | None
) -> dict[str, Any]:
    """The run's config: resolved for a new run, the saved one plus ``overrides`` for a resumed one."""
    if resume is None:
        return cfglib.resolve(spec, config, overrides)
    run_dir = Path(resume)
    if not (run_dir / CONFIG_NAME).is_file():
        raise UsageError(f"{run_dir} is not a run directory (no {CONFIG_NAME}); give the folder 'anime train' made")
    if config is not None:
        raise UsageError("--resume continues with the run's saved config; pass only key=value overrides")
    last = checkpoint.latest(run_dir)
    if last is not None and last.model and last.model != spec.name:
        raise UsageError(
            f"{run_dir} is a run of '{last.model}'; resume it with: anime train {last.model} --resume {run_dir}"
        )
    cfg = cfglib.apply_overrides(cfglib.read_yaml(run_dir / CONFIG_NAME), overrides)
    cfglib.validate(spec, cfg)
    cfg["output_dir"] = str(run_dir)
    return cfg


@contextmanager
def open_run(model: str, cfg: dict[str, Any], resume: bool) -> Iterator[Run]:
    """Claim and lock the run directory (main process) and agree on it in every process."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState()
    lock: IO[str] | None = None
    outcome: Run | AnimeError | None = None
    if state.is_main_process:
        try:
            lock, outcome = _claim(model, cfg, resume)
        except AnimeError as exc:
            outcome = exc
    if state.num_processes > 1:
        outcome = broadcast_object_list([outcome])[0]
    if isinstance(outcome, AnimeError):
        raise outcome
    assert isinstance(outcome, Run)
    cfg["output_dir"] = str(outcome.dir)
    try:
        yield outcome
    finally:
        _release(lock)


def _claim(model: str, cfg: dict[str, Any], resume: bool) -> tuple[IO[str] | None, Run]:
    run_dir = Path(cfg.get("output_dir") or "runs")
    try:
        run_dir = Path(cfg["output_dir"]) if cfg.get("output_dir") else _new_run_dir(model)
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = _lock(run_dir)
    except OSError as exc:  # read-only, no permission, a file in the way
        raise UsageError(f"cannot write to {run_dir} ({exc.strerror}); choose another output_dir") from None
    try:
        last = checkpoint.latest(run_dir)
        if resume and last is None:
            why = (
                "its checkpoints were written by an earlier anime-core"
                if checkpoint.older_format(run_dir)
                else ("it has no complete checkpoint")
            )
            raise UsageError(f"cannot resume {run_dir}: {why}; start a new run instead")
        if not resume and last is not None:
            raise UsageError(
                f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another output_dir"
            )
        checkpoint.clear_incomplete(run_dir)
        return lock, Run(run_dir, last if resume else None, checkpoint.next_number(run_dir))
    except BaseException:
        _release(lock)
        raise


def _new_run_dir(model: str) -> Path:
    root = Path("runs")
    root.mkdir(parents=True, exist_ok=True)
    base = f"{model}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UsageError(f"{root} holds too many runs named {base}-*; set output_dir")


def _lock(run_dir: Path) -> IO[str] | None:
    if fcntl is None:
        return None
    fh = (run_dir / LOCK_NAME).open("a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise UsageError(
            f"{run_dir} is in use by another 'anime train' (PID {holder}); wait for it to end or choose another "
            f"output_dir"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def _release(lock: IO[str] | None) -> None:
    if lock is None:
        return
    lock.seek(0)
    lock.truncate()  # before unlocking: a new holder writes its own PID
    lock.close()
