"""The ``models`` check: nets build and run from the default config, the task builds through the registry."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anime_core.config import model_defaults, validate
from anime_core.specs import ModelSpec
from anime_core.testing.nets import run_discriminator, run_generator
from anime_core.testing.report import Report, Subject, err, no_pretrained, with_sample_data


def check_models(s: Subject, report: Report) -> None:
    """Each model cites its paper, its nets build and map the right shapes, its task and dataset build."""
    reg = s.registry
    for spec in s.own(reg.models):
        m = f"model '{spec.name}'"
        if not spec.paper.strip():
            report.problems.append(f"{m} cites no paper (ModelSpec.paper)")
        if spec.dataset and spec.dataset not in reg.datasets:
            report.problems.append(f"{m} names unknown dataset kind '{spec.dataset}' (ModelSpec.dataset)")
        try:
            gen = reg.build(spec, "generator")
        except Exception as exc:
            report.problems.append(f"{m}: generator '{spec.generator}' does not build ({err(exc)})")
            continue
        y, problems = run_generator(spec, gen, f"{m} generator '{spec.generator}'")
        report.problems += problems
        if spec.discriminator is not None:
            try:
                disc = reg.build(spec, "discriminator")
            except Exception as exc:
                report.problems.append(f"{m}: discriminator '{spec.discriminator}' does not build ({err(exc)})")
            else:
                if y is not None:
                    report.problems += run_discriminator(disc, y, f"{m} discriminator '{spec.discriminator}'")
        if spec.task is None:
            report.skipped.append(f"{m} has no training task")
            continue
        _check_task(s, spec, report)


def _check_task(s: Subject, spec: ModelSpec, report: Report) -> None:
    """``spec.task_class()(spec, cfg, registry)`` builds nets and optimizers, and its dataset yields items.

    Unset ``data.photo``/``data.anime`` point at a few random 128 px images, so a task may look at
    its data in ``build``.
    """
    from anime_core.training.task import TrainingTask

    m = f"model '{spec.name}'"
    try:
        task_cls = spec.task_class()
    except Exception as exc:  # named by the "references" check
        report.problems.append(f"{m}: task does not load ({err(exc)})")
        return
    if not (isinstance(task_cls, type) and issubclass(task_cls, TrainingTask)):
        report.problems.append(f"{m} task is not a TrainingTask subclass")
        return
    name = task_cls.__name__
    if not spec.dataset and task_cls.dataset is TrainingTask.dataset:
        report.problems.append(f"{m} names no dataset kind (ModelSpec.dataset) and {name} does not override dataset()")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cfg = validate(spec, with_sample_data(no_pretrained(model_defaults(spec)), Path(tmp)), s.registry)
            task = task_cls(spec, cfg, s.registry)
            task.build(1)
        except Exception as exc:
            report.problems.append(f"{m}: task {name}(spec, config, registry).build() fails on the default config "
                                   f"({err(exc)})")
            return
        if not isinstance(task.nets.get("generator"), nn.Module):
            report.problems.append(f"{m}: task {name}.build() left no 'generator' in self.nets")
        if not task.optimizers or not all(isinstance(o, torch.optim.Optimizer) for o in task.optimizers.values()):
            report.problems.append(f"{m}: task {name}.build() created no torch optimizers")
        missing = [p for p in task.export_parts if p not in task.nets]
        if missing:
            report.problems.append(f"{m}: task export_parts {missing} are not in self.nets")
        if spec.dataset or task_cls.dataset is not TrainingTask.dataset:
            try:
                data = task.dataset()
                item = data[0] if len(data) else None  # type: ignore[arg-type]
            except Exception as exc:
                report.problems.append(f"{m}: {name}.dataset() fails on a folder of sample images ({err(exc)})")
                return
            if item is None:
                report.problems.append(f"{m}: {name}.dataset() is empty on a folder of six sample images")
            elif not isinstance(item, Mapping):
                report.problems.append(f"{m}: {name}.dataset() items are {type(item).__name__}, expected dicts of "
                                       f"tensors")
            elif spec.kind == "translate":
                _check_sample_rows(task, item, m, report)


def _check_sample_rows(task: Any, item: Mapping[str, Any], m: str, report: Report) -> None:
    """A translate task's sample grid has a label per row (``sample_rows`` when it is not input/output)."""
    from torch.utils.data import default_collate

    from anime_core.training.outputs import row_labels

    batch = default_collate([item, item])
    for net in task.nets.values():
        net.eval()
    try:
        with torch.no_grad():
            images = task.sample(batch)
    except Exception as exc:
        report.problems.append(f"{m}: {type(task).__name__}.sample() fails on a batch of its dataset ({err(exc)})")
        return
    if images is not None and not row_labels(task, images.size(0), 2):
        report.problems.append(f"{m}: {type(task).__name__}.sample() returns {images.size(0) // 2} rows of 2 images "
                               "that cannot be labelled: set sample_rows to one name per row")
