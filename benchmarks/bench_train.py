"""Training throughput: our loop against a minimal plain-PyTorch loop doing the same step (issue 15).

For each trainable model at its paper's training size (``train.image_size`` of the model's default
config) with a small batch on the CPU, two loops run the same work:

(a) **ours**: :func:`anime_core.training.loop.train`, the entry ``anime train`` calls, with its
    defaults (TensorBoard and CSV logging every ``train.log_every`` steps, the progress bar, the
    HTML report, ``data.num_workers``), on a tiny generated dataset in a temporary folder;
(b) **plain**: the same task built the same way (same seed, nets, optimizers, dataset), a plain
    ``DataLoader`` and, per step, ``zero_grad`` + the task's own ``step`` + the schedulers + the
    losses as floats. No Accelerate: ``backward`` is ``loss.backward()``.

The two are interleaved step by step in one process (a, b, b, a, a, b, ...), so they see the same load. Each
timed figure is ``steps / (time of the last step - time of the last warm-up step)``, taken after
each optimizer step (in (a), a wrapper around the loop's ``_step_done``), so data loading,
logging and everything else the loop does between two steps is inside. Reported: the median over
the repeats.

Sample grids and checkpoints come every ``train.sample_every`` / ``train.checkpoint_every`` steps
(500 / 1000 by default), never inside a short timed window. The loop writes both once more when
the run ends; those writes are timed and added to (a) at the default rate (cost / interval per
step), with the report page rewritten at each sample step. The overhead is
``plain steps/s / ours steps/s - 1``; the goal is below 5%.

Both loops start from the same seed on the same batches and draw the same noise: the first
step's losses are compared and printed (0: the same arithmetic). The plain steps run inside our
loop, so under its CPU heap reuse too (``reuse_cpu_memory``): the overhead compares the loops'
own work. ``--heap-ab ROUNDS`` measures what the heap reuse gains over glibc's defaults instead
(the plain step alone, the two settings alternated ABBA).

``loss.vgg_pretrained=false`` (where a model has it): a random VGG19 has the cost of the trained
one and needs no download.

    .venv/bin/python benchmarks/bench_train.py [--models animegan-v1 dcgan ...] [--steps N] [--warmup N]
        [--repeats N] [--batch N] [--size N] [--workers N] [--threads N] [--set KEY=VALUE ...] [--quick]
        [--json out.json] [--heap-ab ROUNDS]

``--quick``: one repeat of fewer steps (a smoke run: a few minutes). Without it, about 10 minutes
on 2 lightly loaded cores.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


@dataclass
class Case:
    """One benchmarked model: the registered name, config overrides, the batch, timed steps (full run)."""

    model: str
    overrides: list[str]
    batch: int
    steps: int
    data: str = "unpaired"  # unpaired | paired | images | style


#: batch 1 where one step at 256 px takes seconds on 2 cores; the rest batch 2 (BatchNorm nets need 2).
#: Steps: enough that the timed window lasts 10-40 s on 2 cores.
CASES = {
    "animegan-v1": Case("animegan", ["generator.variant=v1", "train.init_epochs=0"], 1, 4),
    "animegan-v2": Case("animegan", ["generator.variant=v2", "train.init_epochs=0"], 1, 4),
    "cyclegan": Case("cyclegan", [], 1, 4),
    "ae": Case("ae", [], 2, 20, "paired"),
    "dcgan": Case("dcgan", [], 2, 60, "images"),
    "pixelsake-sr": Case("pixelsake-sr", [], 2, 8, "images"),
    "faststyle": Case("faststyle", [], 1, 6, "style"),
}


# -- data -------------------------------------------------------------------------------------------
def make_image(size: int, rng: np.random.Generator) -> Image.Image:
    """A smooth colour field with noise: decodes and augments like a photo, compresses like one."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = rng.uniform(0, 2 * np.pi, 3)
    base = 0.5 + 0.4 * np.sin(np.stack([xx * 5 + phase[0], yy * 4 + phase[1], (xx + yy) * 3 + phase[2]], -1))
    noise = rng.normal(0, 0.04, (size, size, 3))
    return Image.fromarray((np.clip(base + noise, 0, 1) * 255).astype(np.uint8), "RGB")


def write_folder(folder: Path, n: int, size: int, seed: int) -> Path:
    """``n`` JPEGs of ``size`` x ``size`` named ``img000.jpg``... (equal names across folders: pairs)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        make_image(size, rng).save(folder / f"img{i:03d}.jpg", quality=90)
    return folder


def data_overrides(case: Case, root: Path, items: int, size: int) -> list[str]:
    """Write the case's dataset under ``root`` (once) and return its ``data.*`` overrides."""
    side = int(size * 1.25)  # the loaders resize the short side and crop, as for real photos
    if case.data == "images":
        return [f"data.anime={write_folder(root / 'anime', items, side, 1)}"]
    photo = write_folder(root / "photo", items, side, 0)
    if case.data == "style":
        style = write_folder(root / "style", 1, side, 2) / "img000.jpg"
        return [f"data.photo={photo}", f"data.style={style}"]
    return [f"data.photo={photo}", f"data.anime={write_folder(root / 'anime', items, side, 1)}"]


# -- timing ---------------------------------------------------------------------------------------
@dataclass
class Clock:
    """Wall and CPU seconds of each optimizer step of both loops, and the durations of the loop's writes."""

    ours: list[tuple[float, float]] = field(default_factory=list)
    plain: list[tuple[float, float]] = field(default_factory=list)
    writes: dict[str, list[float]] = field(default_factory=dict)
    first: tuple[dict[str, float], dict[str, float]] = field(default_factory=lambda: ({}, {}))  # ours, plain

    def first_difference(self) -> float:
        """Largest relative difference between the two loops' first-step losses (0: the same arithmetic)."""
        ours, plain = self.first
        if not ours or set(ours) != set(plain):
            return math.inf
        return max(abs(ours[k] - plain[k]) / max(abs(plain[k]), 1e-12) for k in ours)

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.writes.setdefault(name, []).append(time.perf_counter() - start)

        return wrapper


def now() -> tuple[float, float]:
    """Wall time and this process's CPU time (all its threads; DataLoader workers are other processes)."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = now()
    return wall - start[0], cpu - start[1]


@contextlib.contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


# -- (b) a plain PyTorch loop -----------------------------------------------------------------------
class PlainAccelerator:
    """What a task's ``step`` asks of ``ctx.accelerator``, done the plain way on one device."""

    def __init__(self, device: str = "cpu") -> None:
        import torch

        self.device = torch.device(device)
        self.sync_gradients = True
        self.is_main_process = True

    def backward(self, loss: Any) -> None:
        loss.backward()

    def unwrap_model(self, model: Any) -> Any:
        return model

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def print(self, *args: Any) -> None:
        print(*args)


def plain_steps(case: Case, overrides: list[str], log_every: int, workers: int, seed: int = 0,
                first: dict[str, float] | None = None) -> Iterator[tuple[float, float]]:
    """The task's step in a plain loop; yields each step's (wall, CPU) seconds, batch loading included.

    Built at once, not at the first ``next``: the task, and the loader's worker processes started.
    Starting workers forks this process, and every page either loop writes afterwards is copied
    once (copy-on-write faults, ~20k faults and 0.1-0.4 s on pixelsake-sr's next step). Forked
    lazily, in the plain loop's first step, those copies fell on our loop's first timed step (part
    of the +6-16% first measured); forked before our loop starts, both loops pay theirs in the warm-up.
    The batches are those of our loop (a ``DistributedSampler`` with the same seed and epoch), the
    nets start from the same seed and the step draws from its own copy of torch's generator (the
    two loops share one process), so both loops do the same arithmetic on the same numbers:
    ``first`` receives the losses of the first step, to compare.

    Per step: next batch, ``zero_grad`` of every net, the task's ``step``, the schedulers, and every
    ``log_every`` steps the losses as floats (what a loop that prints them does).
    """
    import torch
    from torch.utils.data import DataLoader, DistributedSampler

    from anime_core import config as cfglib
    from anime_core.registry import get_registry
    from anime_core.training.task import StepContext

    reg = get_registry()
    spec = reg.model(case.model)
    cfg = cfglib.resolve(spec, None, overrides)
    torch.manual_seed(seed)
    task = spec.task_class()(spec, cfg, reg)
    dataset = task.dataset()
    batch_size = cfg.train.batch_size
    steps_per_epoch = len(dataset) // batch_size
    task.build(steps_per_epoch)
    task.schedule(cfg.train.max_steps or cfg.train.epochs * steps_per_epoch)  # the loop's schedules
    acc = PlainAccelerator()
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=workers)

    def epoch(number: int) -> Iterator[Any]:
        sampler.set_epoch(number)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(number)
        return iter(loader)  # starts the workers

    def steps(batches: Iterator[Any], rng: torch.Tensor) -> Iterator[tuple[float, float]]:
        step = 0
        while True:
            start = now()
            batch = next(batches, None)
            if batch is None:  # a new epoch
                batches = epoch(step // steps_per_epoch)
                batch = next(batches)
            for net in task.nets.values():
                net.zero_grad(set_to_none=True)
            with torch.random.fork_rng(devices=[]):  # its own draws (noise, pools), as in a process of its own
                torch.set_rng_state(rng)
                logs = task.step(batch, StepContext(acc, step, step // steps_per_epoch, steps_per_epoch))  # type: ignore[arg-type]
                rng = torch.get_rng_state()
            for sched in task.schedulers.values():
                sched.step()
            step += 1
            if step % log_every == 0:
                values = {k: float(v) for k, v in logs.items()}
                if not all(math.isfinite(v) for v in values.values()):
                    raise RuntimeError(f"plain loop: a loss is not finite at step {step}: {values}")
            elapsed = since(start)
            if step == 1 and first is not None:  # untimed: the warm-up's first step
                first.update({k: float(v) for k, v in logs.items()})
            yield elapsed

    batches = epoch(0)
    # the generator state our loop's step 0 sees too (seeded, the nets built, the loader's base seed drawn)
    return steps(batches, torch.get_rng_state())


# -- (a) our loop, with (b) in lock step ------------------------------------------------------------
def lockstep(case: Case, overrides: list[str], run_dir: Path, total: int, log_every: int, workers: int,
             warmup: int) -> Clock:
    """``anime train`` in-process for ``total`` steps; after each of its optimizer steps, one plain step.

    Our step's time runs from the end of the plain step before it to the end of the loop's
    ``_step_done``: it holds the rest of the previous iteration (logging, progress bar, report,
    sample and checkpoint checks), the batch, the accumulation context and the task's step. The
    two loops alternate step by step in ABBA order (ours, plain, plain, ours, ...), so both see the
    same load, and a trend (steps still getting faster after the warm-up: animegan-v1's fell from 6.1
    to 5.6 s) favours neither; with a fixed order the loop going first paid it (+4-10%). The progress
    bar is drawn into a buffer: its cost stays, its lines go. After the warm-up, one ``gc.collect()``
    (untimed): a full collection of the set-up's objects takes ~0.3 s and would land on whichever
    loop's step set it off.
    """
    from anime_core.training import loop
    from anime_core.training.report import RunReport

    clock = Clock()
    plain = plain_steps(case, overrides, log_every, workers, first=clock.first[1])  # its workers start now
    original = loop._step_done
    resumed = [now()]

    collected = [False]

    def settle() -> None:
        """Once both loops are past the warm-up: the set-up's garbage, collected untimed."""
        if not collected[0] and min(len(clock.ours), len(clock.plain)) >= warmup:
            gc.collect()
            collected[0] = True

    def step_done(*args: Any, **kwargs: Any) -> Any:
        values = original(*args, **kwargs)
        clock.ours.append(since(resumed[0]))
        k = len(clock.ours) - 1
        if k == 0:
            clock.first[0].update(values)
        settle()
        if k % 2 == 0:  # ABBA: ours 0, plain 0, plain 1, ours 1, ours 2, plain 2, plain 3, ours 3...
            for _ in range(min(2, total - k)):
                clock.plain.append(next(plain))
                settle()
        resumed[0] = now()
        return values

    opts = [*overrides, f"output_dir={run_dir}", f"train.max_steps={total}"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(loop, "_step_done", step_done))
        stack.enter_context(patched(loop, "write_samples", clock.timed("samples", loop.write_samples)))
        stack.enter_context(patched(loop, "_checkpoint", clock.timed("checkpoint", loop._checkpoint)))
        stack.enter_context(patched(RunReport, "update", clock.timed("report", RunReport.update)))
        stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
        loop.train(case.model, overrides=opts, progress=True)
    plain.close()
    return clock


# -- the benchmark ----------------------------------------------------------------------------------
@dataclass
class Result:
    """Per repeat: (wall, CPU) seconds of the timed steps of each loop; the end-of-run write times."""

    name: str
    size: int
    batch: int
    steps: int
    ours: list[tuple[float, float]] = field(default_factory=list)
    plain: list[tuple[float, float]] = field(default_factory=list)
    writes: dict[str, list[float]] = field(default_factory=dict)
    every: dict[str, int] = field(default_factory=dict)

    def per_step_writes(self) -> float:
        """Seconds per step that sample grids (+ the report page) and checkpoints add at the configured intervals."""
        med = {k: statistics.median(v) for k, v in self.writes.items() if v}
        per = 0.0
        if self.every["sample"]:
            per += (med.get("samples", 0.0) + med.get("report", 0.0)) / self.every["sample"]
        if self.every["checkpoint"]:
            per += med.get("checkpoint", 0.0) / self.every["checkpoint"]
        return per

    def ours_rate(self, with_writes: bool = True) -> float:
        """Median over repeats of the timed steps per wall second, the periodic writes added at their rate."""
        seconds = statistics.median(w for w, _ in self.ours) / self.steps
        return 1 / (seconds + (self.per_step_writes() if with_writes else 0.0))

    def plain_rate(self) -> float:
        return self.steps / statistics.median(w for w, _ in self.plain)

    def overhead(self, cpu: bool = False) -> float:
        """Median over repeats of ours / plain - 1 (each repeat's pair ran in lock step), writes included."""
        i = 1 if cpu else 0
        extra = self.per_step_writes() * self.steps
        return statistics.median((o[i] + extra) / p[i] - 1 for o, p in zip(self.ours, self.plain))


@dataclass
class Setup:
    """One case's run: the config overrides both loops get, and the intervals they resolve to."""

    size: int
    batch: int
    workers: int
    overrides: list[str]
    every: dict[str, int]


def setup(name: str, case: Case, args: argparse.Namespace, root: Path, total: int) -> Setup:
    """Write the case's data (enough for ``total`` steps in one epoch) and resolve its overrides."""
    from anime_core import config as cfglib
    from anime_core.registry import get_registry

    spec = get_registry().model(case.model)
    defaults = cfglib.resolve(spec, None, case.overrides)
    size = args.size or defaults.train.image_size
    batch = args.batch or case.batch
    workers = defaults.data.num_workers if args.workers is None else args.workers
    items = batch * (total + 1)  # one epoch holds the run: no epoch end inside the window
    if case.data == "paired" or case.model == "pixelsake-sr":  # these hold out data.val_fraction
        items = math.ceil(items / (1 - defaults.data.val_fraction)) + 1
    common = [*case.overrides, *data_overrides(case, root / name / "data", items, size), f"train.image_size={size}",
              f"train.batch_size={batch}", "train.device=cpu", f"data.num_workers={workers}", *args.set]
    if cfglib.declares(defaults, "loss.vgg_pretrained"):
        common.append("loss.vgg_pretrained=false")
    for part in ("generator", "discriminator"):
        if args.size and "image_size" in cfglib.net_options(defaults, part):
            common.append(f"{part}.image_size={size}")
    cfg = cfglib.resolve(spec, None, common)
    every = {k: cfglib.lookup(cfg, f"train.{k}_every") for k in ("log", "sample", "checkpoint")}
    return Setup(size, batch, workers, common, every)


def bench(name: str, case: Case, args: argparse.Namespace, root: Path) -> Result:
    steps = args.steps or (max(2, case.steps // 2) if args.quick else case.steps)
    total = args.warmup + steps
    run = setup(name, case, args, root, total)
    common, every, workers = run.overrides, run.every, run.workers
    result = Result(name, run.size, run.batch, steps, every=every)
    for rep in range(args.repeats):
        clock = lockstep(case, common, root / name / f"run{rep}", total, max(1, every["log"]), workers, args.warmup)
        for mine, theirs in ((result.ours, clock.ours), (result.plain, clock.plain)):
            timed = theirs[args.warmup:]
            mine.append((sum(w for w, _ in timed), sum(c for _, c in timed)))
        for key, times in clock.writes.items():
            result.writes.setdefault(key, []).extend(times[-1:])  # the end-of-run write
        (o, oc), (p, pc) = result.ours[-1], result.plain[-1]
        print(f"  {name} repeat {rep + 1}: ours {steps / o:.4g} steps/s, plain {steps / p:.4g} steps/s, "
              f"wall {100 * (o / p - 1):+.1f}%, cpu {100 * (oc / pc - 1):+.1f}% (load {load():.2f}); "
              f"first-step losses differ by {clock.first_difference():.2g} (relative)",
              file=sys.stderr, flush=True)
    return result


def heap_ab(name: str, case: Case, args: argparse.Namespace, root: Path
            ) -> tuple[Setup, dict[str, list[tuple[float, int]]]]:
    """The plain loop's step under glibc's default allocation and under the loop's heap reuse, alternated.

    Our loop serves large CPU blocks from the heap while it trains
    (:func:`anime_core.inference.speed.reuse_cpu_memory`); the lock-step figures cannot show it,
    because the plain steps run inside our loop and so inside the same setting. Here the plain
    loop alone runs ``args.heap_ab`` rounds of (glibc, heap) in ABBA order; after each switch one
    step settles (the heap grows, or is trimmed), the next is timed. Returns the set-up and per
    mode the timed steps' (wall seconds, minor page faults).
    """
    import resource

    from anime_core.inference.speed import reuse_cpu_memory

    rounds = args.heap_ab
    run = setup(f"{name}-heap", case, args, root, 2 + 4 * rounds)
    steps = plain_steps(case, run.overrides, max(1, run.every["log"]), run.workers)
    next(steps), next(steps)  # warm-up
    out: dict[str, list[tuple[float, int]]] = {"glibc": [], "heap": []}
    for i in range(rounds):
        for mode in ("glibc", "heap") if i % 2 == 0 else ("heap", "glibc"):
            with reuse_cpu_memory(mode == "heap"):
                next(steps)
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                wall, _ = next(steps)
                out[mode].append((wall, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults))
    steps.close()
    return run, out


def load() -> float:
    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(CASES), help="default: every registered one")
    parser.add_argument("--steps", type=int, help="timed steps per loop and repeat (default: per model)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, help="default: per model (1 or 2)")
    parser.add_argument("--size", type=int, help="default: the model's train.image_size")
    parser.add_argument("--workers", type=int, help="data.num_workers of both loops (default: the config's)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="extra config overrides for every model (e.g. generator.width=8: the loop's cost alone)")
    parser.add_argument("--quick", action="store_true", help="one repeat, half the steps")
    parser.add_argument("--heap-ab", type=int, metavar="ROUNDS",
                        help="instead: the plain step under glibc's defaults vs our loop's heap reuse, ROUNDS pairs")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    if args.warmup < 1:
        parser.error("--warmup must be 1 or more (the first step builds caches in both loops)")

    import torch

    from anime_core.registry import get_registry

    if args.threads:
        torch.set_num_threads(args.threads)
    known = set(get_registry().models)
    names = args.models or [n for n, c in CASES.items() if c.model in known]
    print(f"# {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load {load():.2f}", file=sys.stderr, flush=True)
    if args.heap_ab:
        return main_heap_ab(names, args)
    results, loads = [], []
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        for name in names:
            before = load()
            results.append(bench(name, CASES[name], args, Path(tmp)))
            loads.append((before + load()) / 2)
    print("| model | size | batch | ours steps/s | plain steps/s | overhead | load |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r, ld in zip(results, loads):
        print(f"| {r.name} | {r.size} | {r.batch} | {r.ours_rate():.4g} | {r.plain_rate():.4g} | "
              f"{100 * r.overhead():+.1f}% | {ld:.1f} |")
    print()
    for r in results:
        writes = ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in r.writes.items())
        print(f"{r.name}: {r.steps} timed steps x {len(r.ours)} repeats; overhead per repeat (wall) "
              f"{', '.join(f'{100 * (o[0] / p[0] - 1):+.1f}%' for o, p in zip(r.ours, r.plain))}; CPU-time overhead "
              f"{100 * r.overhead(cpu=True):+.1f}%; ours without the periodic writes {r.ours_rate(False):.4g} steps/s; "
              f"end-of-run writes {writes}, at sample_every={r.every['sample']} and "
              f"checkpoint_every={r.every['checkpoint']}: {1000 * r.per_step_writes():.1f} ms/step")
    if args.json:
        args.json.write_text(json.dumps([{**r.__dict__, "ours_rate": r.ours_rate(), "plain_rate": r.plain_rate(),
                                          "overhead": r.overhead(), "cpu_overhead": r.overhead(cpu=True)}
                                         for r in results], indent=1))
    return 0


def main_heap_ab(names: list[str], args: argparse.Namespace) -> int:
    print("| model | size | batch | glibc s/step | heap reuse s/step | speed-up | faults/step glibc | heap | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        for name in names:
            before = load()
            run, out = heap_ab(name, CASES[name], args, Path(tmp))
            glibc, heap = (statistics.median(w for w, _ in out[k]) for k in ("glibc", "heap"))
            faults = {k: int(statistics.median(f for _, f in v)) for k, v in out.items()}
            print(f"| {name} | {run.size} | {run.batch} | {glibc:.3g} | {heap:.3g} | {glibc / heap:.2f}x | "
                  f"{faults['glibc']} | {faults['heap']} | {(before + load()) / 2:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    from anime_core.inference.speed import application

    with application():  # measured as 'anime train' runs: the CLI's process-wide speed settings on
        sys.exit(main())
