"""What ``anime eval`` (:mod:`~anime_core.cli.eval_cmd`) and ``anime eval RUN_DIR``
(:mod:`~anime_core.cli.eval_run`) share: a model's outputs written for scoring, failures and the table printed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from anime_core.errors import UsageError
from anime_core.registry import get_registry
from anime_core.runner.limits import check_samples
from anime_core.text import table

if TYPE_CHECKING:
    from anime_core.metrics.scoring import Report


def shown(text: str) -> str:
    """``text`` safe for one terminal line: newline as ``\\n``, tab as ``\\t``, other control characters
    (and undecodable file-name bytes) as ``\\xNN``."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte os.fsdecode could not decode
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def print_failure(path: str, reason: str) -> None:
    """One skipped file or pair, on stderr, escaped."""
    click.echo(f"failed: {shown(path)}: {shown(reason)}", err=True)


def _format(value: float, std: float | None) -> str:
    text = f"{value:.6g}"
    return text if std is None else f"{text} ± {std:.3g}"


def render(report: Report) -> str:
    """The report as a plain-text table plus one line of counts."""
    rows = [[s.metric, _format(s.value, s.std), s.implementation, s.extractor, s.detail] for s in report.scores]
    rows += [[m, "unavailable", "", "", "weights missing (see the error)"] for m in report.unavailable]
    text = table(rows, ["METRIC", "VALUE", "IMPLEMENTATION", "EXTRACTOR", "DETAIL"])
    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
    return f"{text}\n({counts}; {len(report.failed)} unreadable)" if counts else text


def write_outputs(
    model: str, style: str | None, weights: Path | None, photos: Path | None, out: Path, kw: dict[str, Any]
) -> list[tuple[str, str]]:
    """Write the model's outputs into ``out``; returns the inputs that failed."""
    from anime_core.api import load  # torch: not for 'anime eval --help'
    from anime_core.inference import io
    from anime_core.runner.options import FileOptions
    from anime_core.runner.translate import translate_files

    spec = get_registry().model(model)
    if spec.kind == "translate" and photos is None:
        raise UsageError(f"'{model}' translates photos: pass --photos DIR (and --anime DIR to compare with)")
    if spec.kind == "generate" and photos is not None:
        raise UsageError(f"'{model}' generates from noise and takes no --photos; use --num N")
    pipe = load(model, style=style, weights=weights, device=kw["device"])
    if spec.kind == "translate":
        options = FileOptions(output=out, size=kw.get("size"), batch_size=kw["batch_size"], progress=not kw["quiet"])
        failed = list(translate_files(pipe, [str(photos)], options).failed)
        for path, reason in failed:
            print_failure(path, reason)
        return failed
    check_samples(pipe, kw["num"], sheet=False)  # held together: refused before they are drawn
    images = pipe.decode_latents(pipe.latents(kw["num"], kw["seed"]), batch_size=kw["batch_size"])
    for i, x in enumerate(images):
        io.write_atomic(io.to_image(x), out / f"{i:05d}.png")
    return []
