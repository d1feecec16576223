"""What a run writes besides checkpoints: sample grids and the exported generator.

A sample grid of a translate model has one row per kind of image (the task's ``sample()``
concatenates equal blocks: inputs, outputs, targets...), each labelled on the left. A task names
its rows with a ``sample_rows`` attribute; without one, the default ``sample()`` reads "input,
output" and a ``sample()`` of 3 blocks "input, output, target".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from accelerate.utils import send_to_device
from PIL import Image, ImageDraw, ImageFont
from torch.utils.data import default_collate
from torchvision.utils import make_grid

from anime_core import runfiles
from anime_core.errors import TrainingError
from anime_core.inference.io import to_image, write_atomic
from anime_core.training import checkpoint
from anime_core.weights.files import save_native

if TYPE_CHECKING:
    from accelerate import Accelerator
    from PIL import Image

    from anime_core.training.task import TrainingTask



def export(acc: Accelerator, task: TrainingTask, model: str, run_dir: Path, step: int, epoch: int, advice: str) -> Path:
    """Write the task's export parts as native safetensors (``anime run MODEL --weights``), sane ones only."""
    path = run_dir / runfiles.EXPORT
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
    with torch.random.fork_rng(devices=[]):
        items = [dataset[i] for i in range(min(n, len(dataset)))]
    return send_to_device(default_collate(items), device)


@torch.no_grad()
def write_samples(acc: Accelerator, task: TrainingTask, batch: Any, run_dir: Path, step: int) -> None:
    """``samples/step-NNNNNNN.png``: the task's sample images as a grid (main process)."""
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
    n = _batch_size(batch)
    labels = row_labels(task, images.size(0), n)
    nrow = n if labels else max(1, min(8, images.size(0) // 2 if images.size(0) > 1 else 1))
    grid = to_image(make_grid(images, nrow=nrow, padding=PADDING, pad_value=1.0))
    if labels:
        grid = label_rows(grid, labels, images.size(-2))
    write_atomic(grid, run_dir / runfiles.SAMPLES / f"step-{step:07d}.png")


PADDING = 2
_DEFAULT_ROWS = {2: ("input", "output"), 3: ("input", "output", "target")}


def row_labels(task: TrainingTask, count: int, n: int) -> tuple[str, ...]:
    """Labels of the grid's rows, one per block of ``n`` images; empty when the images are not in blocks."""
    if task.spec.kind != "translate" or n < 1 or count % n:
        return ()
    from anime_core.training.task import TrainingTask

    blocks = count // n
    named = tuple(getattr(task, "sample_rows", ()) or ())
    if named:
        return named if len(named) == blocks else ()
    if type(task).sample is TrainingTask.sample:  # the default: inputs above outputs
        return _DEFAULT_ROWS[2] if blocks == 2 else ()
    return _DEFAULT_ROWS.get(blocks, ()) if blocks == 3 else ()


def label_rows(grid: Image.Image, labels: tuple[str, ...], height: int) -> Image.Image:
    """``grid`` with a white margin on the left naming each row."""
    size = max(10, min(24, height // 6))
    try:
        font: Any = ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(grid)
    margin = int(max(draw.textlength(text, font=font) for text in labels)) + size + 4
    out = Image.new("RGB", (grid.width + margin, grid.height), "white")
    out.paste(grid, (margin, 0))
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(labels):
        top, bottom = draw.textbbox((0, 0), text, font=font)[1::2]
        middle = PADDING + i * (height + PADDING) + height // 2
        draw.text((size // 2, middle - (top + bottom) // 2), text, fill="black", font=font)
    return out


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.size(0)
    if isinstance(batch, dict):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.dim():
                return value.size(0)
    return 0
