"""``evaluate(real, fake, metrics)``: the papers' metrics between two image folders, with a report.

Distribution metrics (fid, kid, is, prc) compare the two folders as sets through one pass of the
feature extractor per folder (the standard TF Inception-v3 unless another ``extractor`` is given).
Paired metrics (psnr, ssim, lpips) compare files matched by name and give a per-image CSV. A metric
whose pretrained weights are missing is reported as unavailable (exit 3) while the others are computed.

Sizes: ``size`` first scales every image so its long side is ``size`` px. A pair whose two images still
differ in size is compared at the real image's size: the fake is resized to it (Lanczos) when the two
aspect ratios agree within :data:`ASPECT_TOLERANCE` (models round sizes to multiples of 4 or 8), and
otherwise skipped with the reason. Each skipped file or pair is reported as it happens (``on_failure``).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from anime_core import files
from anime_core.errors import UsageError, WeightsUnavailable, did_you_mean
from anime_core.inference import io
from anime_core.metrics import DISTRIBUTION, METRICS, PAIRED, folders
from anime_core.metrics import distribution as dist
from anime_core.metrics import paired as pm
from anime_core.ops import psnr

#: a pair of different sizes is compared when the aspect ratios differ by at most this fraction
ASPECT_TOLERANCE = 0.02
PAIRED_BY_NAME = "paired metrics (psnr, ssim, lpips) match files by relative name without extension"
OnFailure = Callable[[str, str], None]


def _version(dist_name: str) -> str:
    try:
        return f"{dist_name} {version(dist_name)}"
    except PackageNotFoundError:
        return f"{dist_name} (not installed)"


def parse_metrics(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"fid,kid"`` -> ``("fid", "kid")`` in canonical order; ``all`` selects every metric."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if "all" in names:
        return METRICS
    for n in names:
        if n not in METRICS:
            raise UsageError(f"unknown metric '{n}'{did_you_mean(n, METRICS)}")
    if not names:
        raise UsageError(f"name at least one metric: {', '.join(METRICS)}")
    return tuple(m for m in METRICS if m in names)


@dataclass
class Score:
    """One reported number: the metric's value (and std where the metric has one) and how it was computed."""

    metric: str
    value: float
    std: float | None = None
    implementation: str = ""
    extractor: str = "-"
    detail: str = ""


@dataclass
class Report:
    scores: list[Score] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    csv: Path | None = None
    #: called with (path, reason) for each file or pair skipped, as it is skipped
    on_failure: OnFailure | None = field(default=None, repr=False, compare=False)

    def fail(self, path: str, reason: str) -> None:
        """Record a skipped file or pair and tell ``on_failure`` at once."""
        self.failed.append((path, reason))
        if self.on_failure is not None:
            self.on_failure(path, reason)

    @property
    def exit_code(self) -> int:
        return 3 if self.unavailable else 1 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        def num(x: float | None) -> float | str | None:
            return x if x is None or math.isfinite(x) else str(x)  # JSON has no inf/nan

        return {
            "metrics": {
                s.metric: {
                    "value": num(s.value),
                    "std": num(s.std),
                    "implementation": s.implementation,
                    "extractor": s.extractor,
                    "detail": s.detail,
                }
                for s in self.scores
            },
            "counts": self.counts,
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "unavailable": self.unavailable,
            "per_image_csv": str(self.csv) if self.csv else None,
        }


def evaluate(
    real: str | Path,
    fake: str | Path,
    metrics: str | tuple[str, ...] = DISTRIBUTION,
    *,
    extractor: nn.Module | None = None,
    lpips: nn.Module | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = "cpu",
    csv_path: str | Path | None = None,
    kid_subset_size: int = dist.KID_SUBSET_SIZE,
    progress: bool = False,
    size: int | None = None,
    on_failure: OnFailure | None = None,
) -> Report:
    """Score the images in ``fake`` against those in ``real``.

    ``extractor`` is any module mapping uint8 images (N, 3, H, W) to (N, D) features, or to
    ``{"pool": ..., "logits": ...}``; ``None`` uses the standard Inception-v3 (weights from the cache).
    ``lpips`` likewise replaces the LPIPS network. Paired metrics write per-image rows to ``csv_path``.
    ``size`` scales every image to that long side first; ``on_failure(path, reason)`` hears of each skipped
    file or pair as it happens (they are also in ``Report.failed``).
    """
    from anime_core.inference.pipeline import pick_device

    chosen = parse_metrics(metrics)
    dev = pick_device(device)
    report = Report(on_failure=on_failure)
    real, fake = Path(real).expanduser(), Path(fake).expanduser()
    if any(m in DISTRIBUTION for m in chosen):
        _distribution(report, real, fake, chosen, extractor, batch_size, dev, kid_subset_size, progress, size)
    if any(m in PAIRED for m in chosen):
        _paired(report, real, fake, chosen, lpips, batch_size, dev, csv_path, progress, size)
    return report


def _distribution(
    report: Report,
    real: Path,
    fake: Path,
    chosen: tuple[str, ...],
    extractor: nn.Module | None,
    batch_size: int,
    device: torch.device,
    kid_subset_size: int,
    progress: bool,
    size: int | None,
) -> None:
    wanted = [m for m in chosen if m in DISTRIBUTION]
    real_files, fake_files = files.list_images(real, "--real"), files.list_images(fake, "--fake")
    if extractor is None:
        try:
            from anime_core.metrics.inception import InceptionV3Features

            extractor = InceptionV3Features()
        except WeightsUnavailable as exc:
            for m in wanted:
                report.unavailable[m] = str(exc)
            return
    extractor = extractor.to(device).eval()
    ext_name = str(getattr(extractor, "name", type(extractor).__name__))
    tell = report.on_failure
    feats_r, bad_r = folders.extract_features(extractor, real_files, batch_size, device, progress, "real", size, tell)
    feats_f, bad_f = folders.extract_features(extractor, fake_files, batch_size, device, progress, "fake", size, tell)
    report.failed += bad_r + bad_f
    n_r, n_f = len(real_files) - len(bad_r), len(fake_files) - len(bad_f)
    report.counts.update(real=n_r, fake=n_f)
    if not n_r or not n_f:
        flag, bad = ("--real", bad_r) if not n_r else ("--fake", bad_f)
        raise UsageError(f"no readable images in {flag}: all {len(bad)} were skipped (first: {_first(bad)})")
    impl = _version("torch-fidelity")
    add = report.scores.append
    if "fid" in wanted:
        add(Score("fid", dist.fid(feats_r["pool"], feats_f["pool"]), None, impl, ext_name, f"{n_r} real, {n_f} fake"))
    if "kid" in wanted:
        size = dist.kid_subset_size(n_r, n_f, kid_subset_size)
        mean, std = dist.kid(feats_r["pool"], feats_f["pool"], subset_size=size)
        add(Score("kid", mean, std, impl, ext_name, f"{dist.KID_SUBSETS} subsets of {size}"))
    if "is" in wanted:
        if "logits" not in feats_f:
            raise UsageError("the feature extractor gives no 'logits', which the Inception Score needs")
        mean, std = dist.inception_score(feats_f["logits"])
        add(Score("is", mean, std, impl, ext_name, f"fake only, {min(dist.IS_SPLITS, n_f)} splits"))
    if "prc" in wanted:
        precision, recall = dist.precision_recall(feats_r["pool"], feats_f["pool"])
        detail = f"k={dist.PRC_NEIGHBORHOOD}"
        add(Score("precision", precision, None, impl, ext_name, detail))
        add(Score("recall", recall, None, impl, ext_name, detail))


def _paired(
    report: Report,
    real: Path,
    fake: Path,
    chosen: tuple[str, ...],
    lpips: nn.Module | None,
    batch_size: int,
    device: torch.device,
    csv_path: str | Path | None,
    progress: bool,
    size: int | None,
) -> None:
    pairs = files.match_pairs(real, fake, why=PAIRED_BY_NAME)
    wanted = [m for m in chosen if m in PAIRED]
    if "lpips" in wanted and lpips is None:
        try:
            lpips = pm.LPIPS()
        except WeightsUnavailable as exc:
            report.unavailable["lpips"] = str(exc)
            wanted.remove("lpips")
    if lpips is not None:
        lpips = lpips.to(device).eval()
    rows: dict[str, dict[str, Any]] = {}
    resized = 0
    bar = tqdm(total=len(pairs), unit="pair", desc="paired", disable=not progress, leave=False)

    def decoded():  # type: ignore[no-untyped-def]
        nonlocal resized
        for name, rf, ff in pairs:
            try:
                r, f, scaled = _pair(rf, ff, size)
            except _Skipped as exc:
                report.fail(exc.path, exc.reason)
                bar.update(1)
                continue
            resized += scaled
            rows[name] = {"name": name, "real": str(rf), "fake": str(ff)}
            yield name, torch.stack([io.to_tensor(r), io.to_tensor(f)])

    for group in folders.batched_by_size(decoded(), batch_size):
        names = [n for n, _ in group]
        both = torch.stack([x for _, x in group]).float() / 255  # (B, 2, 3, H, W)
        r, f = both[:, 0], both[:, 1]
        values = {}
        if "psnr" in wanted:
            values["psnr"] = psnr(f.double(), r.double())
        if "ssim" in wanted:
            values["ssim"] = pm.ssim(f, r)
        if "lpips" in wanted:
            values["lpips"] = lpips(f.to(device), r.to(device)).cpu()
        for metric, vals in values.items():
            for n, v in zip(names, vals.tolist()):
                rows[n][metric] = v
        bar.update(len(group))
    bar.close()
    report.counts["pairs"] = len(rows)
    if not rows:
        raise UsageError(f"no image pair could be compared: all {len(pairs)} were skipped (first: "
                         f"{_first(report.failed)})")
    ordered = [rows[k] for k in sorted(rows)]
    impl = _version("torchmetrics")
    for metric in wanted:
        vals = torch.tensor([row[metric] for row in ordered], dtype=torch.float64)
        extractor = str(getattr(lpips, "name", type(lpips).__name__)) if metric == "lpips" else "-"
        unit = " dB" if metric == "psnr" else ""
        std = float(vals.std()) if len(vals) > 1 else None
        scaled = f" ({resized} fakes resized to their real's size)" if resized else ""
        report.scores.append(
            Score(metric, float(vals.mean()), std, impl, extractor, f"mean{unit} over {len(vals)} pairs{scaled}")
        )
    if wanted and csv_path is not None:
        report.csv = _write_csv(Path(csv_path), ordered, wanted)


class _Skipped(Exception):
    """A pair left out: the file to name and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path, self.reason = path, reason


def _pair(rf: Path, ff: Path, size: int | None) -> tuple[Image.Image, Image.Image, bool]:
    """The two images of a pair at one size, and whether the fake was resized to the real's size.

    Raises :class:`_Skipped` for a pair that is skipped.
    """
    current = rf
    try:
        r = folders.load(rf, size)
        current = ff
        f = folders.load(ff, size)
    except io.BadImage as exc:
        raise _Skipped(str(current), f"{exc} (pair skipped)") from None
    if f.size == r.size:
        return r, f, False
    (rw, rh), (fw, fh) = r.size, f.size
    if abs(math.log((fw / fh) / (rw / rh))) > math.log1p(ASPECT_TOLERANCE):
        raise _Skipped(str(ff), f"size {fw}x{fh} has another aspect ratio than {rf} ({rw}x{rh}), so the "
                                   f"pair is skipped; paired metrics compare the same framing")
    return r, f.resize(r.size, Image.Resampling.LANCZOS), True


def _first(failed: list[tuple[str, str]]) -> str:
    return f"{failed[0][0]}: {failed[0][1]}" if failed else "none"


def _write_csv(path: Path, rows: list[dict[str, Any]], metrics: list[str]) -> Path:
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["name", "real", "fake", *metrics], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path
