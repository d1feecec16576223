"""The one training loop, on Hugging Face Accelerate (DESIGN.md "Data flow: training").

It owns devices, mixed precision, gradient accumulation, data loading, logging (CSV and
TensorBoard), sample grids, checkpoints and exact resume, NaN detection and the final export;
a model's :class:`~anime_core.training.task.TrainingTask` only says what one step is. The same
code runs on one process or many (``accelerate launch -m anime_core.cli train ...``).

Exact resume: data order comes from a ``DistributedSampler`` seeded with ``train.seed`` and the
epoch, items are augmented with per-item seeds, and a checkpoint records the step, the epoch and
the batch within it together with the nets, optimizers, schedulers, task state and RNG states.
"""

from __future__ import annotations

import csv
import math
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from anime_core import config as cfglib
from anime_core.errors import ConfigError, TrainingError, UsageError
from anime_core.registry import Registry, get_registry
from anime_core.training.task import StepContext, TrainingTask

CHECKPOINTS = "checkpoints"
EXPORT_NAME = "generator.safetensors"


@dataclass
class TrainState:
    """Counters saved with every checkpoint."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of the current epoch already consumed

    def state_dict(self) -> dict[str, int]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, int]) -> None:
        for key, value in state.items():
            setattr(self, key, int(value))


class _TaskState:
    """Adapter so a task's extra state is saved by ``accelerator.save_state``."""

    def __init__(self, task: TrainingTask) -> None:
        self.task = task

    def state_dict(self) -> dict[str, Any]:
        return self.task.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.task.load_state_dict(state)


class _SkipSampler(Sampler[int]):
    """Yields the wrapped sampler's indices after the first ``skip``."""

    def __init__(self, sampler: Sampler[int], skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self):  # type: ignore[no-untyped-def]
        it = iter(self.sampler)
        for _ in range(self.skip):
            next(it, None)
        yield from it

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)  # type: ignore[arg-type]


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = sorted((run_dir / CHECKPOINTS).glob("step-*"))
    ckpts = [c for c in ckpts if c.is_dir() and not c.name.endswith(".tmp")]
    return ckpts[-1] if ckpts else None


def _default_run_dir(model: str) -> Path:
    return Path("runs") / f"{model}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def prepare_config(
    model: str,
    config: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: str | Path | None = None,
    registry: Registry | None = None,
) -> tuple[dict[str, Any], Path]:
    """Resolve the run config and directory (a resumed run re-reads its saved config)."""
    reg = registry or get_registry()
    spec = reg.model(model)
    if resume is not None:
        run_dir = Path(resume)
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise UsageError(f"{run_dir} is not a run directory (no config.yaml); give the folder 'anime train' made")
        if latest_checkpoint(run_dir) is None:
            raise UsageError(f"{run_dir} has no checkpoint to resume from; start a new run instead")
        if config is not None:
            raise UsageError("--resume continues with the run's saved config; pass only key=value overrides")
        cfg = cfglib.apply_overrides(cfglib.read_yaml(saved), overrides)
    else:
        cfg = cfglib.resolve(spec, config, overrides)
        run_dir = Path(cfg.get("output_dir") or _default_run_dir(model))
        if latest_checkpoint(run_dir) is not None:
            raise UsageError(
                f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another output_dir"
            )
    cfg["output_dir"] = str(run_dir)
    return cfg, run_dir


def _accelerator(cfg: dict[str, Any], run_dir: Path) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    device = cfglib.get(cfg, "train.device", "auto")
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"train.device must be auto, cpu or cuda, not '{device}'")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA GPU is available; use train.device=auto or cpu")
    precision = cfglib.get(cfg, "train.precision", "no")
    if precision not in ("no", "fp16", "bf16"):
        raise ConfigError(f"train.precision must be no, fp16 or bf16, not '{precision}'")
    return Accelerator(
        cpu=device == "cpu",
        mixed_precision=precision,
        gradient_accumulation_steps=int(cfglib.get(cfg, "train.grad_accum", 1)),
        project_config=ProjectConfiguration(project_dir=str(run_dir)),
    )


def train(
    model: str,
    config: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: str | Path | None = None,
    registry: Registry | None = None,
    progress: bool = True,
) -> Path:
    """Train ``model``; returns the run directory holding ``generator.safetensors``."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    reg = registry or get_registry()
    spec = reg.model(model)
    cfg, run_dir = prepare_config(model, config, list(overrides), resume, reg)
    acc = _accelerator(cfg, run_dir)
    seed = int(cfglib.get(cfg, "train.seed", 0))
    set_seed(seed)
    if acc.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfglib.write(cfg, run_dir / "config.yaml")

    task = spec.task_class()(spec, cfg, reg)
    dataset = task.dataset()
    bs = int(cfglib.get(cfg, "train.batch_size"))
    accum = int(cfglib.get(cfg, "train.grad_accum", 1))
    nproc = acc.num_processes
    if len(dataset) < bs * nproc:
        raise ConfigError(
            f"the dataset has {len(dataset)} items, fewer than train.batch_size={bs} x {nproc} processes; "
            f"add data or lower train.batch_size"
        )
    batches_per_epoch = len(dataset) // (bs * nproc)
    steps_per_epoch = max(1, batches_per_epoch // accum)
    batches_per_epoch = steps_per_epoch * accum if batches_per_epoch >= accum else batches_per_epoch
    max_steps = cfglib.get(cfg, "train.max_steps") or int(cfglib.get(cfg, "train.epochs", 1)) * steps_per_epoch

    task.build(steps_per_epoch)
    if "generator" not in task.nets:
        raise UsageError(f"the training task of '{model}' built no 'generator' net")
    net_names, opt_names = list(task.nets), list(task.optimizers)
    prepared = acc.prepare(*task.nets.values(), *task.optimizers.values())
    prepared = prepared if isinstance(prepared, tuple) else (prepared,)
    task.nets = dict(zip(net_names, prepared[: len(net_names)]))
    task.optimizers = dict(zip(opt_names, prepared[len(net_names) :]))
    state = TrainState()
    acc.register_for_checkpointing(state, _TaskState(task), *task.schedulers.values())

    if resume is not None:
        ckpt = latest_checkpoint(run_dir)
        acc.load_state(str(ckpt))
        acc.print(f"resumed from {ckpt} at step {state.step}")
    acc.step = state.batch_in_epoch  # keeps gradient-accumulation boundaries where they were

    logger = _Logger(run_dir, acc.is_main_process, bool(cfglib.get(cfg, "train.tensorboard", True)))
    sample_batch = _sample_batch(dataset, min(bs, 8), acc.device)
    every = {k: int(cfglib.get(cfg, f"train.{k}_every", 0) or 0) for k in ("log", "sample", "checkpoint")}
    keep = int(cfglib.get(cfg, "train.keep_checkpoints", 3))
    workers = int(cfglib.get(cfg, "data.num_workers", 0))
    bar = tqdm(
        total=max_steps,
        initial=state.step,
        disable=not (progress and acc.is_local_main_process),
        desc=f"train {model}",
        unit="step",
        dynamic_ncols=True,
    )

    def checkpoint() -> None:
        _save_checkpoint(acc, run_dir, state, keep)

    try:
        while state.step < max_steps:
            sampler = DistributedSampler(
                dataset, num_replicas=nproc, rank=acc.process_index, shuffle=True, seed=seed, drop_last=True
            )
            sampler.set_epoch(state.epoch)
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(state.epoch)
            loader = DataLoader(
                dataset,
                batch_size=bs,
                drop_last=True,
                num_workers=workers,
                sampler=_SkipSampler(sampler, state.batch_in_epoch * bs),
                pin_memory=acc.device.type == "cuda",
                persistent_workers=False,
            )
            for batch in loader:
                if state.batch_in_epoch >= batches_per_epoch:
                    break
                batch = _to_device(batch, acc.device)
                if state.batch_in_epoch % accum == 0:  # new accumulation window: no stale grads (e.g. G's on D)
                    for net in task.nets.values():
                        net.zero_grad(set_to_none=True)
                ctx = StepContext(acc, state.step, state.epoch, steps_per_epoch)
                with acc.accumulate(*task.nets.values()):
                    logs = task.step(batch, ctx)
                state.batch_in_epoch += 1
                if not acc.sync_gradients:
                    continue
                for sched in task.schedulers.values():
                    sched.step()
                values = _check_finite(logs, state.step, run_dir)
                state.step += 1
                bar.update(1)
                if every["log"] and (state.step % every["log"] == 0 or state.step == max_steps):
                    lrs = {f"lr_{k}": o.param_groups[0]["lr"] for k, o in task.optimizers.items()}
                    logger.log(state.step, state.epoch, {**values, **lrs})
                    bar.set_postfix({k: f"{v:.3g}" for k, v in list(values.items())[:4]})
                if every["sample"] and state.step % every["sample"] == 0:
                    _write_samples(task, sample_batch, run_dir, state.step, acc)
                if every["checkpoint"] and state.step % every["checkpoint"] == 0 and state.step < max_steps:
                    checkpoint()
                if state.step >= max_steps:
                    break
            else:
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                continue
            if state.batch_in_epoch >= batches_per_epoch:
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
    except KeyboardInterrupt:
        bar.close()
        checkpoint()
        export(task, spec.name, run_dir, state, acc)
        raise TrainingError(
            f"interrupted at step {state.step}; a checkpoint was saved, continue with: "
            f"anime train {model} --resume {run_dir}"
        ) from None
    bar.close()
    checkpoint()
    _write_samples(task, sample_batch, run_dir, state.step, acc)
    export(task, spec.name, run_dir, state, acc)
    logger.close()
    acc.wait_for_everyone()
    acc.end_training()
    return run_dir


def export(task: TrainingTask, model: str, run_dir: Path, state: TrainState, acc: Any) -> Path:
    """Write the task's export parts as native safetensors (``anime run MODEL --weights``)."""
    from anime_core.weights.files import save_native

    path = run_dir / EXPORT_NAME
    acc.wait_for_everyone()
    if acc.is_main_process:
        parts = {p: acc.unwrap_model(task.nets[p]) for p in task.export_parts}
        save_native(path, parts, model, task.generator_config(), extra={"step": state.step, "epoch": state.epoch})
    return path


def _save_checkpoint(acc: Any, run_dir: Path, state: TrainState, keep: int) -> None:
    root = run_dir / CHECKPOINTS
    final = root / f"step-{state.step:07d}"
    tmp = root / f"step-{state.step:07d}.tmp"
    acc.wait_for_everyone()
    if final.exists():
        return
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    acc.wait_for_everyone()
    if acc.is_main_process:
        tmp.rename(final)  # a half-written checkpoint is never taken for a good one
        old = sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
        for stale in old[:-keep] if keep > 0 else []:
            shutil.rmtree(stale, ignore_errors=True)
    acc.wait_for_everyone()


def _check_finite(logs: dict[str, Any], step: int, run_dir: Path) -> dict[str, float]:
    values = {k: float(v.detach().float().mean()) if isinstance(v, torch.Tensor) else float(v) for k, v in logs.items()}
    for key, value in values.items():
        if not math.isfinite(value):
            last = latest_checkpoint(run_dir)
            hint = f"resume from the last good checkpoint with --resume {run_dir}" if last else "start again"
            raise TrainingError(
                f"loss '{key}' became {value} at step {step + 1}; lower the learning rate or use "
                f"train.precision=no, then {hint}"
            )
    return values


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _sample_batch(dataset: Any, n: int, device: torch.device) -> Any:
    from torch.utils.data import default_collate

    with torch.random.fork_rng(devices=[]):
        items = [dataset[i] for i in range(min(n, len(dataset)))]
    return _to_device(default_collate(items), device)


@torch.no_grad()
def _write_samples(task: TrainingTask, batch: Any, run_dir: Path, step: int, acc: Any) -> None:
    from torchvision.utils import make_grid

    from anime_core.inference.io import to_image, write_atomic

    if not acc.is_main_process:
        return
    modes = {k: n.training for k, n in task.nets.items()}
    for net in task.nets.values():
        net.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            images = task.sample(batch)
    finally:
        for k, net in task.nets.items():
            net.train(modes[k])
    if images is None:
        return
    images = ((images.detach().float().cpu() + 1) / 2).clamp(0, 1)
    nrow = max(1, min(8, images.size(0) // 2 if images.size(0) > 1 else 1))
    write_atomic(
        to_image(make_grid(images, nrow=nrow, padding=2, pad_value=1.0)), run_dir / "samples" / f"step-{step:07d}.png"
    )


class _Logger:
    """CSV (``metrics.csv``) and, when available, TensorBoard (``tb/``) scalars, main process only."""

    def __init__(self, run_dir: Path, main: bool, tensorboard: bool) -> None:
        self.path = run_dir / "metrics.csv"
        self.main = main
        self.writer = None
        if main and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tb"))
            except ImportError:
                self.writer = None

    def log(self, step: int, epoch: int, values: dict[str, float]) -> None:
        if not self.main:
            return
        row = {"step": step, "epoch": epoch, **values}
        rows: list[dict[str, Any]] = []
        header = list(row)
        if self.path.exists():
            with self.path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                old = list(reader.fieldnames or [])
                if old and set(row) <= set(old):
                    header = old
                else:
                    rows = list(reader)
                    header = old + [k for k in row if k not in old]
        if rows or not self.path.exists():
            with self.path.open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=header)
                w.writeheader()
                w.writerows(rows)
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=header).writerow(row)
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
