"""``anime eval``: the papers' metrics between two folders, or for a model's outputs.

``anime eval --metrics fid,kid,is,prc,psnr,ssim,lpips --real DIR --fake DIR`` compares two folders;
``anime eval MODEL (--style S | --weights FILE) --photos DIR --anime DIR`` first runs the model (translate
models on the photos, generate models sample ``--num`` images) and scores its outputs against the anime
folder. ``anime eval --flicker OUT.mp4 [--reference IN.mp4]`` measures the flicker of a translated video
or animation (:func:`anime_core.inference.temporal.flicker`). Exit codes: 0 ok, 1 some images could not be
read (they are named and skipped), 2 usage, 3 the weights of a requested metric are unavailable (the other
metrics are still printed).

Each skipped file or pair is printed to stderr as it is skipped (``failed: PATH: reason``, with control
characters escaped), so a run that ends with "no image pair could be compared" has said why above.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from anime_core.cli.eval_common import print_failure, render, write_outputs
from anime_core.cli.eval_run import evaluate_run, is_run_dir
from anime_core.cli.run import check_weights_path
from anime_core.errors import UsageError, WeightsUnavailable
from anime_core.metrics import DISTRIBUTION, METRICS, PAIRED
from anime_core.text import table

if TYPE_CHECKING:
    pass

_DIR = click.Path(file_okay=False, path_type=Path)
#: how ``--size`` and pairs of different sizes are handled; shown in --help (README: "anime eval")
SIZES_HELP = (
    "Scale every image (and, with a MODEL or RUN_DIR, every photo before it is translated) so its long side is N "
    "px, like anime run --size [default: full size]. A pair whose two images differ in size is compared at the "
    "real image's size: the fake is resized to it when the aspect ratios agree within 2%, otherwise the pair is "
    "skipped and named."
)


def _frames(path: Path) -> Any:
    """The frames of a video or an animated/multi-page image, RGB arrays."""
    from anime_core.inference import animated, io, video

    if video.is_video(path):
        return video.iter_frames(path)
    if path.suffix.lower() in io.IMAGE_EXTENSIONS:
        return animated.read_frames(path)
    raise UsageError(f"{path} is not a video or an animated image; give e.g. an .mp4, .mkv or .gif file")


def _flicker(kw: dict[str, Any]) -> int:
    from anime_core.inference import io
    from anime_core.inference.temporal import flicker

    out, ref = kw["flicker"], kw["reference"]
    try:
        report = flicker(_frames(out), _frames(ref) if ref else None)
    except io.BadImage as exc:
        raise UsageError(f"cannot measure flicker: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"cannot measure flicker of {out}: {exc}") from None
    if kw["as_json"]:
        click.echo(json.dumps({"video": str(out), **({"reference": str(ref)} if ref else {}), **report.to_dict()}))
        return 0
    where = f"pixels changing by < {report.threshold:g} levels in {ref}" if ref else "all pixels (no --reference)"
    rows = [
        ["flicker", f"{report.value:.4g}", f"mean |change| between consecutive frames, 0-255 levels, over {where}"],
        ["static", f"{report.static:.3f}", "fraction of pixels counted"],
        ["pairs", str(report.pairs), "consecutive frame pairs"],
    ]
    click.echo(table(rows, ["METRIC", "VALUE", "DETAIL"]))
    return 0


def _callback(model: str | None, **kw: Any) -> int:
    from anime_core.metrics.scoring import parse_metrics

    if kw["flicker"] is not None:
        if model or kw["real"] or kw["fake"]:
            raise UsageError("--flicker measures one video; give no MODEL, --real or --fake with it")
        return _flicker(kw)
    if kw["reference"] is not None:
        raise UsageError("--reference goes with --flicker VIDEO: the input the video was translated from")

    if is_run_dir(model):  # anime eval RUN_DIR: a training run's generator, or each checkpoint's
        return evaluate_run(Path(str(model)), kw)
    if kw["all_checkpoints"]:
        raise UsageError("--all-checkpoints scores a training run: anime eval RUN_DIR --all-checkpoints --real DIR")
    metrics = parse_metrics(kw["metrics"]) if kw["metrics"] is not None else None  # None: see _default_metrics
    if metrics and kw["csv"] and not any(m in PAIRED for m in metrics):
        raise UsageError(f"--per-image writes the paired metrics ({', '.join(PAIRED)}); add one to --metrics")
    if kw["weights"] is not None:
        check_weights_path(kw["weights"])
    real, fake = kw["real"], kw["fake"]
    from anime_core.inference import io

    model_failed: list[tuple[str, str]] = []
    if model is None:
        if real is None or fake is None:
            raise UsageError("give --real DIR and --fake DIR, or a MODEL with --photos DIR and --anime DIR")
        return _score(real, fake, metrics, kw, model_failed)
    if real is not None or fake is not None:
        raise UsageError("with a MODEL, give --photos and --anime instead of --real/--fake")
    if kw["anime"] is None:
        raise UsageError(f"pass --anime DIR: the anime images to compare {model}'s outputs with")
    if kw["style"] and kw["weights"]:
        raise UsageError("give either --style or --weights, not both")
    with tempfile.TemporaryDirectory(prefix="anime-eval-") as tmp:
        out = kw["output"] or Path(tmp)
        model_failed = write_outputs(model, kw["style"], kw["weights"], kw["photos"], out, kw)
        if not any(f.suffix.lower() in io.IMAGE_EXTENSIONS for f in out.rglob("*")):
            raise UsageError(f"{model} wrote no images to score; see the failures above")
        return _score(kw["anime"], out, metrics, kw, model_failed)


def _default_metrics(real: Path, fake: Path) -> tuple[tuple[str, ...], dict[str, str]]:
    """The metrics that run without downloading anything, and why each other one is left out.

    Distribution metrics need the Inception weights (95 MB), LPIPS the AlexNet ones (244 MB): by
    default they run only when cached. Paired metrics need files named alike in both folders.
    """
    from anime_core.files import match_pairs
    from anime_core.weights.known import ALEXNET_KEY, ALEXNET_SOURCE, INCEPTION_KEY, INCEPTION_SOURCE
    from anime_core.weights.store import cache_status

    def missing(key: str, source: Any, names: str) -> str | None:
        if cache_status(key, source) == "cached":
            return None
        return f"the {key} weights are not cached (name {names} in --metrics to download them, or run " \
               f"'anime weights pull {key}')"

    skipped: dict[str, str] = dict.fromkeys(DISTRIBUTION, missing(INCEPTION_KEY, INCEPTION_SOURCE, "them"))
    try:
        match_pairs(real, fake)
        skipped.update(psnr=None, ssim=None, lpips=missing(ALEXNET_KEY, ALEXNET_SOURCE, "lpips"))
    except UsageError:
        skipped.update(dict.fromkeys(PAIRED, "the files of the two folders are not named alike"))
    chosen = tuple(m for m in METRICS if skipped[m] is None)
    return chosen, {m: why for m, why in skipped.items() if why is not None}


def _not_computed(skipped: dict[str, str]) -> str:
    """``fid, kid: reason; lpips: other reason``."""
    by_reason: dict[str, list[str]] = {}
    for name, why in skipped.items():
        by_reason.setdefault(why, []).append(name)
    return "; ".join(f"{', '.join(names)}: {why}" for why, names in by_reason.items())


def _score(real: Path, fake: Path, metrics: tuple[str, ...] | None, kw: dict[str, Any], failed: list) -> int:
    from anime_core.metrics.scoring import evaluate

    skipped: dict[str, str] = {}
    if metrics is None:
        metrics, skipped = _default_metrics(real, fake)
        if not metrics:
            raise WeightsUnavailable(f"no metric can run without downloading weights here: {_not_computed(skipped)}")
    csv_path = kw["csv"]
    replaced = csv_path is not None and csv_path.expanduser().exists()
    report = evaluate(
        real,
        fake,
        metrics,
        batch_size=kw["batch_size"],
        device=kw["device"],
        csv_path=csv_path,
        progress=not kw["quiet"],
        size=kw["size"],
        on_failure=print_failure,  # as they happen: an error that ends the run comes after its reasons
    )
    report.failed = failed + report.failed
    if kw["as_json"]:
        more = {"not_computed": skipped} if skipped else {}
        click.echo(json.dumps({"real": str(real), "fake": str(fake), **report.to_dict(), **more}, indent=2))
    else:
        click.echo(render(report))
    if report.csv:
        click.echo(f"per-image scores: {report.csv}" + (" (replaced the file that was there)" if replaced else ""),
                   err=True)
    elif csv_path is not None:
        click.echo(f"per-image scores: none written to {csv_path} (no paired metric was computed)", err=True)
    if skipped:
        click.echo(f"not computed: {_not_computed(skipped)}", err=True)
    if report.unavailable:
        reasons = list(dict.fromkeys(report.unavailable.values()))
        raise WeightsUnavailable(f"{', '.join(report.unavailable)} not computed: " + "; also ".join(reasons))
    return report.exit_code


eval_command = click.Command(
    "eval",
    callback=_callback,
    help=(
        "Score images with the papers' metrics: anime eval --real DIR --fake DIR --metrics fid,kid,psnr, "
        "or anime eval MODEL --style S --photos DIR --anime DIR, "
        "or anime eval RUN_DIR [--all-checkpoints] --real DIR for a training run. "
        f"Metrics: {', '.join(METRICS)} ('all'); {', '.join(DISTRIBUTION)} compare the folders as sets, "
        f"{', '.join(PAIRED)} compare files matched by name."
    ),
    params=[
        click.Argument(["model"], required=False),
        click.Option(["--real"], type=_DIR, help="Folder of reference images."),
        click.Option(["--fake"], type=_DIR, help="Folder of generated/translated images."),
        click.Option(
            ["--metrics", "-m"],
            help="Comma-separated metrics, or 'all' [default: those that run offline: the ones whose weights are "
                 "cached, paired ones when the files are named alike; the rest are named as not computed].",
        ),
        click.Option(["--size"], type=click.IntRange(8), metavar="N", help=SIZES_HELP),
        click.Option(["--style", "-s"], help="MODEL's pretrained style."),
        click.Option(["--weights", "-w"], type=click.Path(dir_okay=False, path_type=Path), help="MODEL's weights."),
        click.Option(["--photos"], type=_DIR, help="Photos a translate MODEL turns into anime."),
        click.Option(["--anime"], type=_DIR, help="Anime images MODEL's outputs are compared with."),
        click.Option(
            ["--num", "-n"],
            default=1000,
            show_default=True,
            type=click.IntRange(1),
            help="Samples of a generate MODEL.",
        ),
        click.Option(["--seed"], default=0, show_default=True, type=int, help="Seed of a generate MODEL's samples."),
        click.Option(
            ["-o", "--output"], type=_DIR, help="Keep MODEL's outputs in this folder (default: a temp folder)."
        ),
        click.Option(
            ["--flicker"],
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Measure the flicker of a translated video or animation instead.",
        ),
        click.Option(
            ["--reference"],
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="With --flicker: the input video; only pixels that are still in it are counted.",
        ),
        click.Option(
            ["--all-checkpoints"],
            is_flag=True,
            help="With RUN_DIR: score every checkpoint's generator (table and plot in RUN_DIR/eval/).",
        ),
        click.Option(["--json", "as_json"], is_flag=True, help="Print the report as JSON."),
        click.Option(
            ["--per-image", "--csv", "csv"],
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write the paired metrics of each image to this CSV file (only when given; a file there is "
                 "replaced, and the run says so).",
        ),
        click.Option(["--batch-size"], default=32, show_default=True, type=click.IntRange(1)),
        click.Option(
            ["--device"], default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda", "mps"])
        ),
        click.Option(["--quiet", "-q"], is_flag=True, help="No progress bars."),
    ],
)
