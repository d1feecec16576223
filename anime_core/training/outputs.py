"""What a run writes besides checkpoints: sample grids and the exported generator."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from anime_core.errors import TrainingError
from anime_core.training import checkpoint

if TYPE_CHECKING:
    from accelerate import Accelerator

    from anime_core.training.task import TrainingTask

EXPORT_NAME = "generator.safetensors"


def export(acc: Accelerator, task: TrainingTask, model: str, run_dir: Path, step: int, epoch: int, advice: str) -> Path:
    """Write the task's export parts as native safetensors (``anime run MODEL --weights``), sane ones only."""
    from anime_core.weights.files import save_native

    path = run_dir / EXPORT_NAME
    parts = {p: acc.unwrap_model(task.nets[p]) for p in task.export_parts}
    problem = checkpoint.weights_problem(parts)  # every process decides alike: the weights are the same
    if problem:
        raise TrainingError(f"{path} was not written: at step {step}, {problem}; {advice}")
    acc.wait_for_everyone()
    if acc.is_main_process:
        with checkpoint.no_space_is_an_error(path):
            save_native(path, parts, model, task.generator_config(), extra={"step": step, "epoch": epoch})
    return path


def sample_batch(dataset: Any, n: int, device: torch.device) -> Any:
    """The first ``n`` items, the same grid inputs for the whole run; the global RNG is left alone."""
    from accelerate.utils import send_to_device
    from torch.utils.data import default_collate

    with torch.random.fork_rng(devices=[]):
        items = [dataset[i] for i in range(min(n, len(dataset)))]
    return send_to_device(default_collate(items), device)


@torch.no_grad()
def write_samples(acc: Accelerator, task: TrainingTask, batch: Any, run_dir: Path, step: int) -> None:
    """``samples/step-NNNNNNN.png``: the task's sample images as a grid (main process)."""
    from torchvision.utils import make_grid

    from anime_core.inference.io import to_image, write_atomic

    if not acc.is_main_process:
        return
    modes = {k: n.training for k, n in task.nets.items()}
    for net in task.nets.values():
        net.eval()
    try:
        with torch.random.fork_rng(devices=[]):  # sampling must not shift the training RNG (exact resume)
            images = task.sample(batch)
    finally:
        for k, net in task.nets.items():
            net.train(modes[k])
    if images is None:
        return
    images = ((images.detach().float().cpu() + 1) / 2).clamp(0, 1)
    nrow = max(1, min(8, images.size(0) // 2 if images.size(0) > 1 else 1))
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=1.0)
    write_atomic(to_image(grid), run_dir / "samples" / f"step-{step:07d}.png")
