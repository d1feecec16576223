"""Writing outputs atomically: one image, input and output side by side, and what a run mode returns."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from anime_core.errors import UsageError
from anime_core.inference import io
from anime_core.inference.inputs import check_finite
from anime_core.inference.modes import ModeOutput
from anime_core.runner.naming import DEFAULT_OUTPUT
from anime_core.runner.report import Report


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    if left.size != right.size:
        left = left.resize(right.size, Image.Resampling.LANCZOS)
    both = Image.new("RGB", (left.width + right.width, right.height))
    both.paste(left, (0, 0))
    both.paste(right, (left.width, 0))
    return both


def write(img: Image.Image, dest: Path, source: str, report: Report) -> None:
    try:
        io.write_atomic(img, dest)
    except (OSError, UsageError) as exc:
        report.failed.append((source, f"cannot write {dest}: {exc}"))
        return
    report.written.append(dest)


def write_mode(result: ModeOutput, output: Path | None) -> Report:
    """Write a mode's images: one sheet to ``-o FILE``, else ``NAME.png`` or ``NAME-000.png`` ... in a folder.

    Without ``-o``, a sheet goes to the current folder and frames to ``anime_out/``.
    """
    report = Report()
    try:
        check_finite(result.images, f"'{result.name}'")
    except io.BadImage as exc:
        report.failed.append((result.name, str(exc)))
        return report
    if output is not None and output.suffix.lower() in io.IMAGE_EXTENSIONS and not output.is_dir():
        targets = [(output, None)]
    elif result.frames:
        folder = output or DEFAULT_OUTPUT
        targets = [(folder / f"{result.name}-{i:03d}.png", i) for i in range(len(result.images))]
    else:
        targets = [((output or Path()) / f"{result.name}.png", None)]
    for dest, index in targets:
        if index is None:
            img = io.grid(result.images, result.nrow, result.padding)
        else:
            img = io.to_image(result.images[index])
        existed = dest.exists()
        write(img, dest, result.name, report)
        if existed and report.written[-1:] == [dest]:
            report.replaced.append(dest)
    return report
