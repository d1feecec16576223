"""``anime eval RUN_DIR``: score a training run's generator, or each checkpoint's, to pick one by a number.

``anime eval RUN_DIR --real anime/`` runs the run's exported ``generator.safetensors`` (a translate
model on ``--photos``, by default the run's ``data.photo``; a generate model samples ``--num``
images) and scores the outputs against ``--real`` (by default the run's ``data.anime``).
``--all-checkpoints`` does the same for the generator each checkpoint holds and writes the table
and a plot of each metric over the steps to ``RUN_DIR/eval/checkpoints.csv`` and ``.png``; the
run's ``report.html`` shows them. The table is rewritten (atomically) after each checkpoint is scored,
so when a later checkpoint fails, or the evaluation is interrupted, the earlier rows are kept.
``--size N`` translates the photos at N px on the long side instead of full size.

Without ``--metrics`` every metric that can run here runs: FID, KID, IS and precision/recall
need the Inception weights, LPIPS the AlexNet weights, and PSNR/SSIM need ``--real`` files named
like the photos (a paired target for each). The ones left out are named, with the reason, and
the exit code stays 0. Metrics asked for by name that cannot run end with exit 3, after the
others are printed.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from anime_core import config as cfglib
from anime_core import runfiles
from anime_core.cli.eval_common import print_failure, render, write_outputs
from anime_core.errors import UsageError, WeightsUnavailable
from anime_core.fsutil import atomic_path
from anime_core.metrics import DISTRIBUTION, PAIRED
from anime_core.registry import get_registry
from anime_core.text import table as text_table

if TYPE_CHECKING:
    from anime_core.metrics.scoring import Report

#: metrics where a smaller value is better (the others: larger is better)
LOWER_IS_BETTER = {"fid", "kid", "lpips"}


@dataclass(frozen=True)
class Target:
    """One generator to score: its label, the training step it was saved at, and its weights file."""

    label: str
    step: int | None
    weights: Path


def is_run_dir(arg: str | None) -> bool:
    """Whether the MODEL argument of ``anime eval`` names a run folder instead of a model."""
    return bool(arg) and (Path(str(arg)) / runfiles.CONFIG).is_file()


def evaluate_run(run_dir: Path, kw: dict[str, Any]) -> int:
    """``anime eval RUN_DIR [--all-checkpoints]``: print the scores; the exit code."""
    for flag, key in (("--fake", "fake"), ("--style", "style"), ("--weights", "weights")):
        if kw.get(key):
            raise UsageError(f"with a run folder the outputs come from its own weights; give no {flag}")
    model = run_model(run_dir)
    spec = get_registry().model(model)
    cfg = cfglib.load_saved(spec, run_dir / runfiles.CONFIG)
    real = _folder(kw.get("real") or kw.get("anime") or cfg.data.anime, "--real", run_dir)
    photos = None
    if spec.kind == "translate":
        photos = _folder(kw.get("photos") or cfg.data.photo, "--photos", run_dir)
        if not kw.get("photos"):
            click.echo(f"note: translating the run's training photos ({photos}); pass --photos DIR for held-out "
                       "ones", err=True)
    targets = checkpoint_targets(run_dir) if kw.get("all_checkpoints") else [final_target(run_dir)]
    metrics, skipped = _metrics(kw, spec.kind, real, photos)
    keep = (lambda results: _write_table(run_dir, *_table(results), final=False)) if kw.get("all_checkpoints") \
        else None
    results = _score_all(model, targets, real, photos, metrics, skipped, kw, keep)
    return _report(run_dir, model, results, skipped, kw)


def run_model(run_dir: Path) -> str:
    """The model a run folder belongs to (its report state, a checkpoint marker or its export)."""
    from anime_core.training.report import _model_of, _read_state

    model = _read_state(run_dir).get("model") or _model_of(run_dir)
    if not model:
        raise UsageError(f"cannot tell which model {run_dir} was trained for (no report.json, checkpoint or "
                         f"{runfiles.EXPORT}); it may not have reached its first checkpoint yet")
    return str(model)


def final_target(run_dir: Path) -> Target:
    path = run_dir / runfiles.EXPORT
    if not path.is_file():
        raise UsageError(f"{run_dir} has no {runfiles.EXPORT} yet (the run has not finished); score its "
                         f"checkpoints with --all-checkpoints, or resume it to the end")
    return Target("final", _export_step(path), path)


def checkpoint_targets(run_dir: Path) -> list[Target]:
    """The generator of every complete checkpoint, oldest first, and the final export when it is newer."""
    from anime_core.training import checkpoint

    targets, missing = [], []
    for ckpt in checkpoint.checkpoints(run_dir):
        path = ckpt.path / runfiles.EXPORT
        if path.is_file():
            targets.append(Target(ckpt.path.name, ckpt.step, path))
        else:
            missing.append(ckpt.path.name)
    if missing:
        click.echo(f"note: {', '.join(missing)} hold no {runfiles.EXPORT} (written by an older anime-core); skipped",
                   err=True)
    final = run_dir / runfiles.EXPORT
    if final.is_file():
        step = _export_step(final)
        if not targets or step is None or step > (targets[-1].step or 0):
            targets.append(Target("final", step, final))
    if not targets:
        raise UsageError(f"{run_dir} has no checkpoint with a generator to score yet; wait for its first checkpoint")
    return targets


def _export_step(path: Path) -> int | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as fh:
            return int((fh.metadata() or {}).get("step", ""))
    except Exception:  # unreadable or no step recorded: the file is still scored, without a step
        return None


def _folder(value: Any, flag: str, run_dir: Path) -> Path:
    if not value:
        raise UsageError(f"pass {flag} DIR: the run's config names no folder for it")
    path = Path(str(value)).expanduser()
    if not path.is_dir():
        raise UsageError(f"{flag} {path} is not a folder (from {run_dir}/config.yaml unless given); pass {flag} DIR")
    return path


def _metrics(kw: dict[str, Any], kind: str, real: Path, photos: Path | None) -> tuple[list[str], dict[str, str]]:
    """The metrics to compute and, when none were named, those left out with the reason."""
    from anime_core.files import match_pairs
    from anime_core.metrics.scoring import parse_metrics

    if _named_metrics():
        return list(parse_metrics(kw["metrics"])), {}
    chosen, skipped = list(DISTRIBUTION), {}
    if kind != "translate" or photos is None:
        skipped.update(dict.fromkeys(PAIRED, "a generate model has no target per image"))
        return chosen, skipped
    try:
        match_pairs(real, photos)  # the outputs are named like the photos
    except UsageError:
        skipped.update(dict.fromkeys(PAIRED, f"the files of {real} are not named like the photos"))
        return chosen, skipped
    return chosen + list(PAIRED), skipped


def _score_all(model: str, targets: list[Target], real: Path, photos: Path | None, metrics: list[str],
               skipped: dict[str, str], kw: dict[str, Any],
               keep: Callable[[list[tuple[Target, Report]]], list[Path]] | None = None) -> list[tuple[Target, Report]]:
    """Score each target in turn; ``keep(results)`` saves the results so far after each one."""
    results: list[tuple[Target, Report]] = []
    kept: list[Path] = []
    try:
        for target in targets:
            if not metrics:
                break
            report = _score_one(model, target, real, photos, metrics, kw, len(targets))
            results.append((target, report))
            for name, why in report.unavailable.items():  # missing weights stay missing: not retried per checkpoint
                skipped[name] = why
            metrics = [m for m in metrics if m not in report.unavailable]
            if keep is not None and report.scores:
                kept = keep(results)
    except BaseException:  # a later failure or Ctrl-C: say where the finished rows are, then fail as before
        if kept:
            click.echo(f"note: the scores of {len(results)} checkpoint(s) scored before this are kept in "
                       f"{kept[0]}", err=True)
        raise
    return results


def _score_one(model: str, target: Target, real: Path, photos: Path | None, metrics: list[str], kw: dict[str, Any],
               count: int) -> Report:
    from anime_core.metrics.scoring import evaluate

    with tempfile.TemporaryDirectory(prefix="anime-eval-") as tmp:
        out = Path(kw["output"]) / target.label if kw.get("output") else Path(tmp)
        failed = write_outputs(model, None, target.weights, photos, out, kw)
        report = evaluate(real, out, tuple(metrics), batch_size=kw["batch_size"], device=kw["device"],
                          csv_path=_csv_path(kw.get("csv"), target, count), progress=not kw["quiet"],
                          size=kw.get("size"), on_failure=print_failure)
    report.failed = failed + report.failed
    return report


def _csv_path(given: Path | None, target: Target, count: int) -> Path | None:
    if given is None or count == 1:
        return given
    return given.with_name(f"{given.stem}-{target.label}{given.suffix or '.csv'}")


def _report(
    run_dir: Path, model: str, results: list[tuple[Target, Report]], skipped: dict[str, str], kw: dict[str, Any]
) -> int:
    table = _table(results)
    if kw.get("all_checkpoints") and table[1]:
        written = _write_table(run_dir, *table)
        click.echo(f"table and plot: {', '.join(str(p) for p in written)}", err=True)
    if kw["as_json"]:
        click.echo(json.dumps({"run": str(run_dir), "results": [
            {"label": t.label, "step": t.step, "weights": str(t.weights), **r.to_dict()} for t, r in results],
            "not_computed": skipped}, indent=2))
    elif len(results) == 1:
        target, report = results[0]
        click.echo(f"{run_dir}: {target.weights.name}" + (f" (step {target.step})" if target.step is not None else ""))
        click.echo(render(report))
    elif results:
        header, rows = table
        click.echo(text_table([[str(c) for c in r] for r in rows], header))
        for line in _best(model, header, rows, results):
            click.echo(line)
    return _exit(results, skipped, kw)


def _table(results: list[tuple[Target, Report]]) -> tuple[list[str], list[list[Any]]]:
    names = list(dict.fromkeys(s.metric for _, r in results for s in r.scores))
    rows = []
    for target, report in results:
        values = {s.metric: s.value for s in report.scores}
        rows.append([target.step if target.step is not None else "", target.label,
                     *[f"{values[m]:.6g}" if m in values else "" for m in names]])
    return ["STEP", "CHECKPOINT", *[n.upper() for n in names]], rows


def _best(model: str, header: list[str], rows: list[list[Any]], results: list[tuple[Target, Report]]) -> list[str]:
    lines = []
    for col, name in enumerate(header[2:], start=2):
        scored = [(float(r[col]), i) for i, r in enumerate(rows) if r[col] != ""]
        if not scored:
            continue
        pick = min(scored) if name.lower() in LOWER_IS_BETTER else max(scored)
        target = results[pick[1]][0]
        lines.append(f"best by {name.lower()}: {target.label}" + (f" (step {target.step})" if target.step else "")
                     + f": anime run {model} --weights {target.weights}")
    return lines


def _write_table(run_dir: Path, header: list[str], rows: list[list[Any]], final: bool = True) -> list[Path]:
    """``eval/checkpoints.csv``, ``eval/checkpoints.png`` (with matplotlib), and the refreshed report.

    Each file is replaced atomically. ``final=False`` (after each checkpoint) writes the CSV and the plot
    quietly; the report is refreshed, and a missing matplotlib named, only at the end.
    """
    from anime_core.training import report as run_report

    path = run_dir / run_report.EVAL_TABLE
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), newline="")
    written = [path]
    series = {name.lower(): [(float(r[0]), float(r[i])) for r in rows if r[0] != "" and r[i] != ""]
              for i, name in enumerate(header) if i >= 2}
    if run_report._have_matplotlib() and any(series.values()):
        png = path.with_suffix(".png")
        with atomic_path(png) as tmp:
            tmp.write_bytes(run_report.plot_png(series, "step"))
        written.append(png)
    elif final:
        click.echo(f"note: no plot without matplotlib; {run_report.EXTRA} adds it", err=True)
    if not final:
        return written
    try:
        written.append(run_report.write_report(run_dir))
    except OSError as exc:
        click.echo(f"note: {run_dir / runfiles.REPORT} not refreshed ({exc})", err=True)
    return written


def _exit(results: list[tuple[Target, Report]], skipped: dict[str, str], kw: dict[str, Any]) -> int:
    computed = {s.metric for _, r in results for s in r.scores}
    if skipped:
        reasons: dict[str, list[str]] = {}
        for name, why in skipped.items():
            reasons.setdefault(why, []).append(name)
        text = "; ".join(f"{', '.join(names)}: {why}" for why, names in reasons.items())
        if _named_metrics() or not computed:
            raise WeightsUnavailable(f"not computed: {text}")
        click.echo(f"not computed: {text}", err=True)
    return 1 if any(r.failed for _, r in results) else 0


def _named_metrics() -> bool:
    """Whether the user named the metrics (``--metrics``) rather than leaving the default."""
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source("metrics") if ctx is not None else None
    return source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
