"""The one training loop, on Hugging Face Accelerate (DESIGN.md "Data flow: training").

:func:`train` reads like Accelerate's complete example: an ``Accelerator``, the config, the data,
the task's nets and optimizers, one ``prepare``, then epochs of batches. Accelerate does the
devices, mixed precision, gradient accumulation, device transfer (``send_to_device``), skipping
the consumed batches on resume (``skip_first_batches``), the trackers (TensorBoard, and our
:class:`~.tracking.CsvTracker`) and checkpoint naming and rotation (``save_state``/``load_state``).
The loop keeps what a GAN run needs on top:

- exact resume: a ``DistributedSampler`` seeded with ``train.seed`` and the epoch orders the data
  (items are augmented with per-item seeds) and a checkpoint records the batch within the epoch,
  so a resumed run ends bit-identical to an unbroken one;
- all nets' gradients are cleared when an accumulation window starts (a generator loss leaves
  gradients on the discriminator);
- a NaN loss stops the run naming the step, and only finite, sane weights are checkpointed or
  exported (:mod:`.checkpoint`); Ctrl-C and SIGTERM checkpoint and stop (:mod:`.signals`); one
  run at a time per directory (:mod:`.rundir`).

A model's :class:`~anime_core.training.task.TrainingTask` only says what one step is.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import accelerate.optimizer as accelerated_optimizer
import torch
from accelerate import Accelerator, PartialState, skip_first_batches
from accelerate.utils import ProjectConfiguration, send_to_device, set_seed
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from anime_core import config as cfglib
from anime_core import runfiles
from anime_core.errors import ConfigError, TrainingError, UsageError
from anime_core.inference.speed import reuse_cpu_memory
from anime_core.registry import Registry, get_registry
from anime_core.text import printable
from anime_core.training import checkpoint, preflight
from anime_core.training.checkpoint import TrainState
from anime_core.training.data import prepared_data_errors
from anime_core.training.init import apply_start, start_weights
from anime_core.training.outputs import export, sample_batch, write_samples
from anime_core.training.rundir import Run, open_run, run_config
from anime_core.training.signals import StopRequest, ignore_stop_signals
from anime_core.training.task import StepContext, TrainingTask
from anime_core.training.tracking import TENSORBOARD, trackers

if TYPE_CHECKING:
    from anime_core.schema import RunConfig

__all__ = ["train"]


def train(
    model: str,
    config: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: str | Path | None = None,
    registry: Registry | None = None,
    progress: bool = True,
    init: str | None = None,
) -> Path:
    """Train ``model``; returns the run directory holding ``generator.safetensors``.

    ``init``: a style (``animegan:paprika``) or weights file the new run starts from (:mod:`.init`).
    """
    reg = registry or get_registry()
    spec = reg.model(model)
    cfg = run_config(spec, config, list(overrides), resume, reg)  # data folders checked, stored absolute
    PartialState(cpu=_device(cfg) == "cpu")  # the processes exist first, so they agree on one run directory
    start = start_weights(spec, cfg, reg, init, config, overrides, resuming=resume is not None)  # before any folder
    with _accelerate_tweaks(), open_run(spec.name, cfg, resume is not None) as run:
        resume_step = run.resume_from.step if run.resume_from is not None else 0
        log_with, tracker_kwargs = trackers(run.dir, resume_step, cfg.train.tensorboard)
        acc = _accelerator(cfg, run, log_with)
        seed = cfg.train.seed
        set_seed(seed)

        # Data, then the task's nets and optimizers (built through the registry), the core's schedules, one prepare.
        task = spec.task_class()(spec, cfg, reg)
        with prepared_data_errors(cfg), preflight.perceptual_advice(cfg):
            preflight.require_weights(task)  # before the dataset, which may write prepared copies
            dataset = task.dataset()  # may record where its prepared copies are (AnimeGAN: data.prepared_cache)
            plan = Plan.of(cfg, len(dataset), acc.num_processes)
            task.build(plan.steps_per_epoch)
            task.schedule(plan.max_steps)  # schedule.* over the run's real number of optimizer steps
        if acc.is_main_process:  # only once the checks passed: a run that fails them removes its folder unnamed
            cfglib.write(cfg, run.dir / runfiles.CONFIG)
            _announce(run.dir, "tensorboard" in log_with)
        if acc.is_main_process and (warning := preflight.warn_random_features(task, cfg)):
            print(warning, file=sys.stderr)
        for note in apply_start(task, start):  # --init weights and train.freeze, before the optimizers are wrapped
            acc.print(printable(note))  # names from the --init file
        _prepare(acc, task, model)
        configured_lrs = checkpoint.config_lrs(task)

        state = TrainState()
        if run.resume_from is not None:
            checkpoint.load(acc, task, state, run.resume_from)
            for change in checkpoint.apply_config_lrs(task, configured_lrs):
                acc.print(printable(change))
            acc.print(printable(f"resumed from {run.resume_from.path} at step {state.step}"))
        acc.step = state.batch_in_epoch  # accumulation windows continue where they were
        run.report.plan(plan.max_steps, state.step)
        if run.resume_from is None:  # the page exists from the start (a resumed run's is rewritten as it goes)
            run.report.update(force=True)

        every = {"log": cfg.train.log_every, "sample": cfg.train.sample_every, "checkpoint": cfg.train.checkpoint_every}
        samples = sample_batch(dataset, min(plan.batch_size, 8), acc.device)
        saved_at = state.step if run.resume_from is not None else -1
        stopping = False
        with _tracking(acc, tracker_kwargs), _progress(acc, plan, state, model, progress) as bar:
            # Ctrl-C / SIGTERM: finish the step, then checkpoint below. On the CPU, freed activations are
            # reused from the heap instead of glibc's fresh mmap per large block (page-faulted and zeroed
            # again every step: cyclegan at 256 px, ~560k faults and 1 s of system time a step)
            with StopRequest() as stop, reuse_cpu_memory(acc.device.type == "cpu"):
                while state.step < plan.max_steps and not stopping:
                    for batch in _epoch_batches(dataset, state, plan, acc, seed, cfg):
                        ctx = StepContext(acc, state.step, state.epoch, plan.steps_per_epoch)
                        logs = _accumulate(acc, task, batch, ctx, state, plan.accum)
                        if logs is None:
                            continue  # inside an accumulation window
                        values = _step_done(acc, task, logs, state, model, run.dir)
                        run.report.tick(state.step)
                        # drawn with the step at tqdm's own rate: a forced redraw per step is pure overhead
                        bar.set_postfix({k: f"{v:.3g}" for k, v in list(values.items())[:4]}, refresh=False)
                        bar.update(1)
                        epoch_values = {}
                        if state.batch_in_epoch == plan.batches_per_epoch:  # the epoch's last step
                            epoch_values = task.on_epoch_end(state.epoch, ctx) or {}
                            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                        done = state.step >= plan.max_steps
                        if every["log"] and (_due(every["log"], state.step) or done or epoch_values):
                            acc.log({"epoch": ctx.epoch, **values, **epoch_values, **_lrs(task)}, step=state.step)
                        if _due(every["sample"], state.step):
                            write_samples(acc, task, samples, run.dir, state.step)
                            run.report.update()
                        if _due(every["checkpoint"], state.step) and not done:  # the last one is written below
                            saved_at = _checkpoint(acc, task, state, run, model, saved_at)
                        stopping = _agree_to_stop(acc, stop)
                        if stopping or done:
                            break
            bar.close()
            _checkpoint(acc, task, state, run, model, saved_at)
            if stopping or stop.signal:  # a signal, or a KeyboardInterrupt raised inside a step
                export(acc, task, spec.name, run.dir, state.step, state.epoch, _advice(model, run.dir))
                raise TrainingError(
                    f"interrupted at step {state.step} ({stop.signal or 'stop requested'}); a checkpoint was saved, "
                    f"continue with: anime train {model} --resume {run.dir}"
                )
            write_samples(acc, task, samples, run.dir, state.step)
            export(acc, task, spec.name, run.dir, state.step, state.epoch, _advice(model, run.dir))
            acc.wait_for_everyone()
    return run.dir


@dataclass(frozen=True)
class Plan:
    """How many batches and optimizer steps make an epoch, and how many steps the run."""

    batch_size: int
    accum: int
    batches_per_epoch: int  # per process, a whole number of accumulation windows
    steps_per_epoch: int
    max_steps: int

    @classmethod
    def of(cls, cfg: RunConfig, items: int, processes: int) -> Plan:
        bs, accum = cfg.train.batch_size, cfg.train.grad_accum
        batches = items // (bs * processes)
        if batches == 0:
            raise ConfigError(
                f"the dataset has {items} items, fewer than train.batch_size={bs} x {processes} processes; "
                f"add data or lower train.batch_size"
            )
        if batches < accum:
            raise ConfigError(
                f"an epoch has {batches} batches per process, fewer than train.grad_accum={accum}; "
                f"add data or lower train.grad_accum"
            )
        steps = batches // accum
        max_steps = cfg.train.max_steps or cfg.train.epochs * steps
        return cls(bs, accum, steps * accum, steps, max_steps)


@contextmanager
def _tracking(acc: Accelerator, init_kwargs: dict[str, Any]) -> Iterator[None]:
    """Accelerate's trackers for the run; closed also when it stops."""
    acc.init_trackers(TENSORBOARD, init_kwargs=init_kwargs)
    try:
        yield
    finally:
        acc.end_training()


def _progress(acc: Accelerator, plan: Plan, state: TrainState, model: str, progress: bool) -> Any:
    return tqdm(
        total=plan.max_steps,
        initial=state.step,
        disable=not (progress and acc.is_local_main_process),
        desc=f"train {model}",
        unit="step",
        dynamic_ncols=True,
    )


def _device(cfg: RunConfig) -> str:
    device = cfg.train.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA GPU is available; use train.device=auto or cpu")
    return device


class _QuietRotation(logging.Filter):
    """Accelerate warns at every rotation that it deletes the oldest checkpoint: that is the plan."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "to make room for new checkpoint" not in record.getMessage()


_QUIET_ROTATION = _QuietRotation()


def _accelerator(cfg: RunConfig, run: Run, log_with: list[Any]) -> Accelerator:
    project = ProjectConfiguration(
        project_dir=str(run.dir),
        logging_dir=str(run.dir),
        automatic_checkpoint_naming=True,
        # Accelerate deletes the oldest checkpoint before it writes the new one: keeping two at least
        # means a save that fails (a full disk) still leaves the previous checkpoint.
        total_limit=max(2, cfg.train.keep_checkpoints),
        iteration=run.next_checkpoint,
    )
    return Accelerator(
        cpu=_device(cfg) == "cpu",
        mixed_precision=cfg.train.precision,
        gradient_accumulation_steps=cfg.train.grad_accum,
        project_config=project,
        log_with=log_with,
    )


_tweaks_lock = threading.Lock()
_tweaks_depth = 0
_tweaks_saved: list[Any] = []  # accelerate's own is_lomo_available while the cached one stands in


@contextmanager
def _accelerate_tweaks() -> Iterator[None]:
    """Two changes to accelerate for one :func:`train` call, undone when it returns (reentrant, thread-safe).

    - Accelerate's ``AcceleratedOptimizer.step`` asks ``is_lomo_available()`` twice per call, and
      each answer is an ``importlib`` search of ``sys.path`` (0.3-1 ms): with two optimizers, 1-4 ms
      a step, the largest part of the loop's own cost on a small net (``benchmarks/bench_train.py``).
      Whether the package is installed does not change during a run, so the answer is cached.
    - Its warning at every checkpoint rotation (that is the plan) is filtered out.

    Both are module-level state of accelerate that the host program shares, so the originals come
    back when the outermost call ends.
    """
    global _tweaks_depth
    with _tweaks_lock:
        _tweaks_depth += 1
        if _tweaks_depth == 1:
            check = getattr(accelerated_optimizer, "is_lomo_available", None)
            if callable(check):
                _tweaks_saved.append(check)
                accelerated_optimizer.is_lomo_available = functools.cache(check)
            logging.getLogger("accelerate.accelerator").addFilter(_QUIET_ROTATION)
    try:
        yield
    finally:
        with _tweaks_lock:
            _tweaks_depth -= 1
            if _tweaks_depth == 0:
                if _tweaks_saved:
                    accelerated_optimizer.is_lomo_available = _tweaks_saved.pop()
                logging.getLogger("accelerate.accelerator").removeFilter(_QUIET_ROTATION)


def _prepare(acc: Accelerator, task: TrainingTask, model: str) -> None:
    """One ``accelerator.prepare`` for every net and optimizer (schedulers stay the loop's to step)."""
    if "generator" not in task.nets:
        raise UsageError(f"the training task of '{model}' built no 'generator' net")
    nets, opts = list(task.nets), list(task.optimizers)
    prepared = acc.prepare(*task.nets.values(), *task.optimizers.values())
    prepared = prepared if isinstance(prepared, tuple) else (prepared,)
    task.nets = dict(zip(nets, prepared[: len(nets)]))
    task.optimizers = dict(zip(opts, prepared[len(nets) :]))


def _epoch_batches(
    dataset: Any, state: TrainState, plan: Plan, acc: Accelerator, seed: int, cfg: RunConfig
) -> Iterator[Any]:
    """The rest of epoch ``state.epoch`` on this process's device: the same order in every run."""
    sampler = DistributedSampler(
        dataset, num_replicas=acc.num_processes, rank=acc.process_index, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(state.epoch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(state.epoch)
    loader = DataLoader(
        dataset,
        batch_size=plan.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.data.num_workers,
        pin_memory=acc.device.type == "cuda",
        worker_init_fn=ignore_stop_signals,
    )
    loader = skip_first_batches(loader, state.batch_in_epoch)
    for batch in itertools.islice(loader, plan.batches_per_epoch - state.batch_in_epoch):
        yield send_to_device(batch, acc.device, non_blocking=True)


def _accumulate(
    acc: Accelerator, task: TrainingTask, batch: Any, ctx: StepContext, state: TrainState, accum: int
) -> dict[str, Any] | None:
    """Run ``task.step`` on one batch; its logs when the batch completed an optimizer step, else None."""
    if state.batch_in_epoch % accum == 0:  # a new window: no stale gradients (a generator loss leaves some on D)
        for net in task.nets.values():
            net.zero_grad(set_to_none=True)
    with acc.accumulate(*task.nets.values()):
        logs = task.step(batch, ctx)
    state.batch_in_epoch += 1
    return logs if acc.sync_gradients else None


def _step_done(
    acc: Accelerator, task: TrainingTask, logs: dict[str, Any], state: TrainState, model: str, run_dir: Path
) -> dict[str, float]:
    """After an optimizer step: step the schedulers, check the losses, count the step; returns the losses."""
    for sched in task.schedulers.values():
        sched.step()
    values = _finite_scalars(acc, logs, state.step + 1, model, run_dir)
    state.step += 1
    return values


def _finite_scalars(acc: Accelerator, logs: dict[str, Any], step: int, model: str, run_dir: Path) -> dict[str, float]:
    """The step's logs as floats (averaged over processes, so all stop together); a NaN stops the run.

    The tensors come to the host in one copy: a ``float()`` each would wait for the GPU once per loss.
    """
    if not logs:
        return {}
    stacked = torch.stack([torch.as_tensor(v, device=acc.device).detach().float().mean() for v in logs.values()])
    if acc.num_processes > 1:
        stacked = acc.reduce(stacked, "mean")
    values = dict(zip(logs, stacked.tolist()))
    for key, value in values.items():
        if not math.isfinite(value):
            raise TrainingError(
                f"loss '{key}' became {value} at step {step}; use train.precision=no or {_advice(model, run_dir)}"
            )
    return values


def _checkpoint(acc: Accelerator, task: TrainingTask, state: TrainState, run: Run, model: str, saved_at: int) -> int:
    """Save a checkpoint unless this step has one; diverged weights stop the run instead."""
    if state.step == saved_at:
        return saved_at
    problem = checkpoint.weights_problem(task.nets)
    if problem:
        raise TrainingError(f"at step {state.step}, {problem}; {_advice(model, run.dir)}")
    last = checkpoint.latest(run.dir)
    kept = f"the checkpoint of step {last.step} is kept" if last else "no checkpoint was saved"
    hint = f"{kept}; free some space and resume with --resume {run.dir}"
    saved = checkpoint.save(acc, task, state, run.dir, model, hint)
    # the checkpoint's generator as 'anime run --weights' takes it: 'anime eval RUN --all-checkpoints' scores each
    export(acc, task, model, saved.path, state.step, state.epoch, _advice(model, run.dir))
    checkpoint.report_saved(acc, saved)  # its step and size: the folder's number counts saves
    return state.step


def _announce(run_dir: Path, tensorboard: bool) -> None:
    """Where to look while the run goes on: said at the start, not only at the end."""
    where = run_dir.absolute()
    lines = [f"run folder: {where}", f"report: {where / runfiles.REPORT} (updated at each sample step)"]
    if tensorboard:
        lines.append(f"TensorBoard: tensorboard --logdir {where / TENSORBOARD}")
    print("\n".join(lines), file=sys.stderr, flush=True)


def _advice(model: str, run_dir: Path) -> str:
    last = checkpoint.latest(run_dir)
    if last is None:
        return "lower the learning rate and start again"
    return (
        f"lower the learning rate and resume from the last good checkpoint (step {last.step}): "
        f"anime train {model} --resume {run_dir} with the new rate as key=value (it replaces the checkpoint's)"
    )


def _due(every: int, step: int) -> bool:
    return every > 0 and step % every == 0


def _lrs(task: TrainingTask) -> dict[str, float]:
    return {f"lr_{k}": o.param_groups[0]["lr"] for k, o in task.optimizers.items()}


def _agree_to_stop(acc: Accelerator, stop: StopRequest) -> bool:
    """Whether any process was asked to stop (all processes stop at the same step).

    One process needs no agreement: ``check_trigger`` would copy a device flag to the host at every step.
    """
    if acc.num_processes == 1:
        return stop.signal is not None
    if stop.signal:
        acc.set_trigger()
    return acc.check_trigger()
