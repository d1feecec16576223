"""Checkpoints: Accelerate's ``save_state`` and rotation, made safe to resume from.

A checkpoint is ``<run>/checkpoints/checkpoint_<n>``, named and rotated by Accelerate
(``ProjectConfiguration(automatic_checkpoint_naming=True, total_limit=...)``). Accelerate writes
the nets (safetensors), the optimizers, the gradient scaler and every process's RNG state; the
loop adds its own state in formats that cannot carry code: the task's and the schedulers' state
in ``anime_state.safetensors`` (tensors, plus their structure as JSON metadata) and the counters
in ``train_state.json``.

``train_state.json`` is written last and marks the checkpoint complete: a folder without it (a
crash or a full disk mid-save) is never resumed from, and is deleted before the next save so
that Accelerate's rotation does not count it. A checkpoint is only written when every net's
weights are finite and sane (:func:`weights_problem`), so the newest checkpoint is always one
worth resuming from, with a lower learning rate if the run diverged.

The folder number counts saves, not steps (``checkpoint_0/1/2`` may hold steps 10/13/16), and
Accelerate's rotation and resume rely on that naming, so it is kept; instead each save prints its
step and size on disk (``saved checkpoint_2: step 16, 380 MiB``), and ``anime info RUN_DIR`` lists
every checkpoint with its step, epoch, size and time (:func:`summary`).

Loading never unpickles objects: every pickle-format file (what Accelerate writes with
``torch.save``) must load with ``torch.load(weights_only=True)`` and a short allow-list of
numpy types (the RNG state), or the checkpoint is refused as tampered (exit 3).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from anime_core import runfiles
from anime_core.budget import fmt_bytes
from anime_core.errors import TrainingError, WeightsUnavailable
from anime_core.fsutil import atomic_path
from anime_core.text import table

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch import nn

    from anime_core.training.task import TrainingTask

#: parameters larger than this mean a diverged run (fp16 overflows at 6.5e4; trained conv weights stay near 1)
MAX_WEIGHT = 1e6
#: what the RNG states Accelerate pickles need besides tensors and Python containers (numpy's state array)
_NP_CORE = getattr(np, "_core", None) or np.core  # numpy 2 renamed np.core
_SAFE_GLOBALS = [_NP_CORE.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
_FOLDER = re.compile(r"checkpoint_(\d+)")
_PICKLE_SUFFIXES = {".bin", ".pkl", ".pt", ".pth"}


class CheckpointRefused(WeightsUnavailable):
    """A checkpoint holds something other than tensors (tampered, or not written by anime-core): exit 3."""


@dataclass
class TrainState:
    """The loop's counters, saved as ``train_state.json``."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of the current epoch already consumed


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint folder and what its marker says."""

    path: Path
    step: int
    model: str


def checkpoints(run_dir: Path) -> list[Checkpoint]:
    """The run's complete checkpoints, oldest first."""
    found = []
    for folder in _folders(run_dir):
        try:
            marker = json.loads((folder / runfiles.CHECKPOINT_STATE).read_text())
            found.append(Checkpoint(folder, int(marker["step"]), str(marker.get("model", ""))))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # no marker (half-written) or an unreadable one: not a checkpoint to trust
    return sorted(found, key=lambda c: (c.step, _number(c.path)))


def latest(run_dir: Path) -> Checkpoint | None:
    found = checkpoints(run_dir)
    return found[-1] if found else None


def next_number(run_dir: Path) -> int:
    """Accelerate's next ``checkpoint_<n>`` (its ``ProjectConfiguration.iteration``)."""
    return max((_number(f) + 1 for f in _folders(run_dir)), default=0)


def clear_incomplete(run_dir: Path) -> None:
    """Delete half-written checkpoint folders (main process, under the run lock)."""
    for folder in _folders(run_dir):
        if not (folder / runfiles.CHECKPOINT_STATE).is_file():
            shutil.rmtree(folder, ignore_errors=True)


def older_format(run_dir: Path) -> bool:
    """Whether the run holds checkpoints of an earlier anime-core (``step-*`` folders with pickled state)."""
    return any((run_dir / runfiles.CHECKPOINTS).glob("step-*"))


# -- saving ---------------------------------------------------------------------------------------
def save(acc: Accelerator, task: TrainingTask, state: TrainState, run_dir: Path, model: str, hint: str) -> Checkpoint:
    """Write a checkpoint of the run now; the caller has checked the weights with :func:`weights_problem`.

    On a full disk the half-written folder is removed and the older checkpoints stay; ``hint`` says
    how to go on.
    """
    acc.wait_for_everyone()
    if acc.is_main_process:
        clear_incomplete(run_dir)
    acc.wait_for_everyone()
    folder = run_dir / runfiles.CHECKPOINTS / f"checkpoint_{acc.project_configuration.iteration}"

    def remove_folder() -> None:
        if acc.is_main_process:
            shutil.rmtree(folder, ignore_errors=True)

    with no_space_is_an_error(folder, remove_folder, hint):
        acc.save_state()
        if acc.is_main_process:
            extra = {"task": task.state_dict(), "schedulers": {k: s.state_dict() for k, s in task.schedulers.items()}}
            write_tree(folder / runfiles.CHECKPOINT_EXTRA, extra, f"the state of {type(task).__name__}")
        acc.wait_for_everyone()  # every process's RNG file is written before the marker
        if acc.is_main_process:
            marker = {**asdict(state), "model": model}
            with atomic_path(folder / runfiles.CHECKPOINT_STATE) as tmp:
                tmp.write_text(json.dumps(marker))
    acc.wait_for_everyone()
    return Checkpoint(folder, state.step, model)


def weights_problem(nets: dict[str, nn.Module]) -> str | None:
    """Why these weights must not be checkpointed or exported (non-finite or diverged), or None."""
    for name, net in nets.items():
        tensors = [t.detach() for t in net.state_dict().values() if t.is_floating_point() and t.numel()]
        params = [p.detach() for p in net.parameters() if p.numel()]
        if tensors and not bool(torch.stack([t.isfinite().all() for t in tensors]).all()):
            return f"the weights of '{name}' are not finite (nan or inf)"
        largest = float(torch.stack([p.abs().max().float() for p in params]).max()) if params else 0.0
        if largest > MAX_WEIGHT:
            return f"the weights of '{name}' reached {largest:.3g}, past {MAX_WEIGHT:g} (the run diverged)"
    return None


def size_on_disk(folder: Path) -> int:
    """Bytes of the files under ``folder`` (what deleting it frees)."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue  # removed meanwhile (rotation)
    return total


def report_saved(acc: Accelerator, ckpt: Checkpoint) -> None:
    """Say what was saved, with the step and the folder's size (main process; above a progress bar)."""
    if acc.is_main_process:
        tqdm.write(f"saved {ckpt.path.name}: step {ckpt.step}, {fmt_bytes(size_on_disk(ckpt.path))} ({ckpt.path})",
                   file=sys.stderr)


def summary(run_dir: Path) -> str:
    """``anime info RUN_DIR``: a table of the run's checkpoints (folder, step, epoch, size, saved) and a total."""
    rows, total = [], 0
    for ckpt in checkpoints(run_dir):
        size = size_on_disk(ckpt.path)
        total += size
        try:
            marker = ckpt.path / runfiles.CHECKPOINT_STATE
            epoch = str(json.loads(marker.read_text()).get("epoch", ""))
            saved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(marker.stat().st_mtime))
        except (OSError, ValueError, AttributeError):
            epoch, saved = "", ""
        rows.append([ckpt.path.name, str(ckpt.step), epoch, fmt_bytes(size), saved])
    incomplete = sum(1 for f in _folders(run_dir) if not (f / runfiles.CHECKPOINT_STATE).is_file())
    if not rows:
        text = f"{run_dir}: no complete checkpoint yet"
    else:
        text = table(rows, ["CHECKPOINT", "STEP", "EPOCH", "SIZE", "SAVED"])
        text += f"\n{len(rows)} checkpoint(s), {fmt_bytes(total)} in {run_dir / runfiles.CHECKPOINTS}"
    if incomplete:
        text += f"\n{incomplete} incomplete folder(s) (a save that did not finish), removed at the next save"
    return text


# -- loading --------------------------------------------------------------------------------------
def load(acc: Accelerator, task: TrainingTask, state: TrainState, ckpt: Checkpoint) -> None:
    """Restore the run from ``ckpt``; anything but tensors in a pickle-format file is refused."""
    verify(ckpt.path)
    try:
        acc.load_state(str(ckpt.path), load_kwargs={"weights_only": True})
    except Exception as exc:  # verified files that still do not fit these nets: another config or model
        raise TrainingError(f"{ckpt.path} does not fit this run's nets ({_first_line(exc)}); start a new run") from exc
    try:
        extra = read_tree(ckpt.path / runfiles.CHECKPOINT_EXTRA)
        marker = json.loads((ckpt.path / runfiles.CHECKPOINT_STATE).read_text())
        counters = {key: int(marker[key]) for key in asdict(state)}
        schedulers = {name: extra["schedulers"][name] for name in task.schedulers}
    except Exception as exc:
        raise CheckpointRefused(
            f"{ckpt.path} is damaged ({_first_line(exc)}); delete it to resume from the checkpoint before it"
        ) from None
    task.load_state_dict(extra["task"])
    for name, sched in task.schedulers.items():
        sched.load_state_dict(schedulers[name])
    for key, value in counters.items():
        setattr(state, key, value)


def config_lrs(task: TrainingTask) -> dict[str, list[float]]:
    """Each optimizer's base learning rates as the config built them (before a checkpoint is loaded)."""
    return {name: [g.get("initial_lr", g["lr"]) for g in opt.param_groups] for name, opt in task.optimizers.items()}


def apply_config_lrs(task: TrainingTask, built: dict[str, list[float]]) -> list[str]:
    """Put the config's learning rates back over the checkpoint's; returns what changed, to print.

    A resumed run may be given a lower rate (the advice after a NaN loss), but the optimizer and
    scheduler state in the checkpoint carry the old one. The scheduled rate is rescaled by
    new/old base rate, which is exact for the multiplicative schedules tasks use (LambdaLR).
    """
    changes = []
    for name, opt in task.optimizers.items():
        scheds = [s for s in task.schedulers.values() if s.optimizer is getattr(opt, "optimizer", opt)]
        for i, group in enumerate(opt.param_groups):
            old, new = group.get("initial_lr", group["lr"]), built[name][i]
            if old == new:
                continue
            group["lr"] = group["lr"] * new / old if old else new
            if "initial_lr" in group:
                group["initial_lr"] = new
            for sched in scheds:
                sched.base_lrs[i] = new
                sched._last_lr[i] = group["lr"]  # what get_last_lr() reports until the next step
            changes.append(f"learning rate of '{name}' set to {new:g} by the config (the checkpoint had {old:g})")
    return changes


def verify(folder: Path) -> None:
    """Refuse ``folder`` unless every pickle-format file in it holds only tensors and plain data."""
    for path in sorted(folder.iterdir()):
        if path.name.startswith("custom_checkpoint_"):
            raise CheckpointRefused(f"{path} is not a file anime-core writes; refusing to resume from {folder}")
        if path.suffix not in _PICKLE_SUFFIXES:
            continue
        try:
            with torch.serialization.safe_globals(_SAFE_GLOBALS):
                torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:
            wanted = re.search(r"GLOBAL ([\w.]+)", str(exc))
            why = f"it calls for {wanted.group(1)}" if wanted else _first_line(exc)
            raise CheckpointRefused(
                f"{path} holds more than tensors ({why}), so it may have been tampered with; refusing to load it. "
                f"Resume only runs you trust, or start a new run"
            ) from None


# -- the loop's own state: tensors as safetensors, the structure around them as JSON ---------------
def write_tree(path: Path, tree: Any, what: str) -> None:
    """Save nested dicts/lists of tensors, numbers, strings, booleans and None, without pickle."""
    tensors: dict[str, torch.Tensor] = {}
    layout = _flatten(tree, "", tensors, what)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"anime_state": json.dumps(layout)})


def read_tree(path: Path) -> Any:
    with safe_open(str(path), "pt") as fh:
        layout = json.loads(fh.metadata()["anime_state"])
        tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118 (safe_open is no dict)
    return _unflatten(layout, tensors)


def _flatten(obj: Any, key: str, tensors: dict[str, torch.Tensor], what: str) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu().contiguous().clone()  # clone: safetensors refuses shared storage
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _flatten(v, f"{key}/{k}", tensors, what) for k, v in obj.items()}
        return {"__items__": [[k, _flatten(v, f"{key}/{k}", tensors, what)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{key}/{i}", tensors, what) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TrainingError(
        f"cannot checkpoint a {type(obj).__name__} in {what} ({key}); "
        f"state may hold only tensors, numbers, strings, lists and dicts"
    )


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__items__"}:
            return {k: _unflatten(v, tensors) for k, v in obj["__items__"]}
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


# -- a full disk ----------------------------------------------------------------------------------
@contextmanager
def no_space_is_an_error(target: Path, cleanup: Callable[[], None] | None = None, hint: str = "") -> Iterator[None]:
    """Turn "disk full" while writing ``target`` into one sentence (exit 1), after ``cleanup()``."""
    try:
        yield
    except Exception as exc:
        full = _disk_full(exc, target)  # before cleanup frees the space
        if cleanup is not None:
            cleanup()
        if not full:
            raise
        where = _mount_point(target)
        raise TrainingError(f"no space left on {where} while writing {target}{'; ' + hint if hint else ''}") from None


def _disk_full(exc: BaseException, target: Path) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    if "No space left on device" in text or "Disk quota exceeded" in text:
        return True  # safetensors' SafetensorError carries the OS message
    # torch.save reports a failed write as an opaque C++ enforce failure: ask the file system
    try:
        return isinstance(exc, RuntimeError) and shutil.disk_usage(_existing(target)).free < (1 << 20)
    except OSError:
        return False


def _mount_point(path: Path) -> Path:
    path = _existing(path).resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _existing(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _folders(run_dir: Path) -> Iterator[Path]:
    root = run_dir / runfiles.CHECKPOINTS
    if root.is_dir():
        yield from (p for p in root.iterdir() if p.is_dir() and _FOLDER.fullmatch(p.name))


def _number(folder: Path) -> int:
    match = _FOLDER.fullmatch(folder.name)
    return int(match.group(1)) if match else -1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
