"""The run directory: its config, a unique default name, and an exclusive lock while a run uses it.

Two ``anime train`` on one folder would mix their checkpoints, config and metrics, so the main
process holds an ``flock`` on ``<run>/.lock`` (which records its PID) for the whole run; a
second one gets an error naming that PID. Default names are ``runs/MODEL-DATE-TIME`` plus
``-2``, ``-3``... when a run started in the same second already took the name (``mkdir`` is the
arbiter). Under ``accelerate launch`` the main process decides and the others follow.

Nothing is created before the config and the data folders are checked (:mod:`.preflight`), and a
run that fails before its first step removes the folder it created (not one that existed), so a
mistyped command leaves no ``runs/MODEL-*`` holding only ``config.yaml``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from anime_core import config as cfglib
from anime_core import runfiles
from anime_core.errors import AnimeError, UsageError
from anime_core.specs import ModelSpec
from anime_core.training import checkpoint, preflight
from anime_core.training.report import RunReport

if TYPE_CHECKING:
    from anime_core.registry import Registry
    from anime_core.schema import RunConfig

try:
    import fcntl
except ImportError:  # Windows: runs are not locked there
    fcntl = None  # type: ignore[assignment]


@dataclass
class Run:
    """Where a run writes, what it resumes from, the number of its next checkpoint folder, and its report.

    ``created``: this run made the folder (and ``created_root``, the ``runs/`` folder above it), so
    it may remove them if it fails before its first step.
    """

    dir: Path
    resume_from: checkpoint.Checkpoint | None
    next_checkpoint: int
    created: bool = False
    created_root: Path | None = None
    report: RunReport = field(default_factory=lambda: RunReport(Path(), "", enabled=False))


def run_config(
    spec: ModelSpec,
    config: str | Path | None,
    overrides: list[str] | tuple[str, ...],
    resume: str | Path | None,
    registry: Registry | None = None,
) -> RunConfig:
    """The run's config: resolved for a new run, the saved one plus ``overrides`` for a resumed one.

    Data folders are stored as absolute paths and the ones the dataset kind reads are checked.
    """
    from anime_core.registry import get_registry

    keys = preflight.data_keys(spec, registry or get_registry())
    if resume is None:
        cfg = cfglib.resolve(spec, config, overrides)
        preflight.absolute_paths(cfg, keys)
        preflight.check_data(spec.name, cfg, keys)
        return cfg
    run_dir = Path(resume)
    if not (run_dir / runfiles.CONFIG).is_file():
        raise UsageError(f"{run_dir} is not a run directory (no {runfiles.CONFIG}); give the folder 'anime train' made")
    if config is not None:
        raise UsageError("--resume continues with the run's saved config; pass only key=value overrides")
    last = checkpoint.latest(run_dir)
    if last is not None and last.model and last.model != spec.name:
        raise UsageError(
            f"{run_dir} is a run of '{last.model}'; resume it with: anime train {last.model} --resume {run_dir}"
        )
    cfg = cfglib.load_saved(spec, run_dir / runfiles.CONFIG, overrides)  # keys added since the run take their defaults
    preflight.absolute_paths(cfg, keys)  # a relative path from an older run, or a new key=value
    preflight.check_data(spec.name, cfg, keys, resume_dir=run_dir)
    cfg.output_dir = str(run_dir)
    return cfg


@contextmanager
def open_run(model: str, cfg: RunConfig, resume: bool) -> Iterator[Run]:
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
    cfg.output_dir = str(outcome.dir)
    if state.is_main_process:
        outcome.report = RunReport(outcome.dir, model, log_every=cfg.train.log_every or 10)
    try:
        yield outcome
    except BaseException as exc:
        if state.is_main_process:
            if outcome.created and not outcome.report.started:
                _remove(outcome)
            else:
                outcome.report.finish(exc)
        raise
    else:
        outcome.report.finish(None)
    finally:
        _release(lock)


def _claim(model: str, cfg: RunConfig, resume: bool) -> tuple[IO[str] | None, Run]:
    run_dir = Path(cfg.output_dir or "runs")
    root_existed = Path("runs").is_dir()
    try:
        run_dir = Path(cfg.output_dir) if cfg.output_dir else runfiles.new_run_dir("runs", model)
        created = cfg.output_dir is None or not run_dir.exists()
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
        root = run_dir.parent if not cfg.output_dir and not root_existed else None
        return lock, Run(run_dir, last if resume else None, checkpoint.next_number(run_dir), created, root)
    except BaseException:
        _release(lock)
        raise


def _remove(run: Run) -> None:
    """Delete the folder a run created and wrote nothing useful to (and an emptied ``runs/`` it made)."""
    shutil.rmtree(run.dir, ignore_errors=True)
    if run.created_root is not None:
        with suppress(OSError):  # only when empty: another run may have started meanwhile
            run.created_root.rmdir()


def _lock(run_dir: Path) -> IO[str] | None:
    if fcntl is None:
        return None
    fh = (run_dir / runfiles.LOCK).open("a+")
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
