"""Many processes (``accelerate launch``): each translates its share of the inputs; the reports are merged."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypeVar

import torch

from anime_core.runner.report import Report

if TYPE_CHECKING:
    from accelerate import PartialState


T = TypeVar("T")


def process_state(device: str = "auto") -> PartialState | None:
    """accelerate's state when this is one of several processes (``accelerate launch``), else None.

    ``device`` is ``--device``: on a CPU the processes talk through gloo (accelerate's ``cpu=True``;
    without it, CPU-only processes would each take the whole run). A single process imports no
    accelerate and creates no process group.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    from accelerate import PartialState

    return PartialState(cpu=device == "cpu" or (device == "auto" and not torch.cuda.is_available()))


def end_processes(state: PartialState | None) -> None:
    """Tear the process group down once the last collective is done, while the interpreter is whole.

    Left to interpreter exit, a gloo worker thread may still be releasing the finished all-gather of
    :func:`gather_reports` (its tensors hold Python objects) when finalisation starts: it then needs
    the GIL, is ended by Python in the middle of a C++ destructor, and ``std::terminate`` aborts the
    process ("terminate called without an active exception", SIGABRT) after every file was written.
    ``destroy_process_group`` joins those threads first. Decode and write threads are already joined
    by :func:`translate_files` (its pools are shut down with ``wait=True``).
    """
    if state is not None:
        state.destroy_process_group()  # a no-op when no group exists


def share(jobs: list[T], state: PartialState) -> list[T]:
    """This process's contiguous share of ``jobs`` (accelerate's ``split_between_processes``)."""
    with state.split_between_processes(jobs) as mine:
        return list(mine)


def gather_reports(report: Report, state: PartialState) -> Report:
    """Every process's report, merged in process order (each process gets the whole); time: the slowest."""
    from accelerate.utils import gather_object

    parts: list[Report] = gather_object([report])
    merged = Report(seconds=max(part.seconds for part in parts))
    for part in parts:
        merged.add(part)
    return merged
