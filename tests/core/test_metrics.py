"""Metrics: PSNR/SSIM against independent computations, FID/KID/IS/precision-recall against closed
forms and hand computations (through injected feature extractors), folder pairing and bad images."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from helpers import make_image, write_images
from PIL import Image
from scipy import linalg
from skimage.metrics import structural_similarity
from torch import nn

from anime_core import metrics
from anime_core.errors import UsageError
from anime_core.specs import WeightsSource


class ChannelMean(nn.Module):
    """A tiny injected extractor: uint8 images -> their per-channel mean colour (N, 3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mean(dim=(2, 3))


def closed_form_fid(x: np.ndarray, y: np.ndarray) -> float:
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_psnr_matches_numpy_closed_form():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 3, 16, 20)).astype(np.float64) / 255
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    expected = [10 * np.log10(1.0 / np.mean((a[i] - b[i]) ** 2)) for i in range(3)]
    got = metrics.psnr(torch.from_numpy(b), torch.from_numpy(a))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)  # torchmetrics keeps data_range in fp32


def test_one_psnr_convention_everywhere_identical_images_are_infinite():
    """One PSNR (anime_core.ops.psnr) for training logs, int8 checks and anime eval; +inf as torchmetrics."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    from anime_core import ops
    from anime_core.inference.backends import onnx_quant

    assert metrics.psnr is ops.psnr and onnx_quant.psnr is ops.psnr
    photo = torch.from_numpy(np.array(make_image((48, 32), 3))).permute(2, 0, 1)
    a = torch.stack([photo, photo.flip(-1)]).double() / 255
    b = (a + 0.02 * torch.randn(a.shape, generator=torch.Generator().manual_seed(0), dtype=a.dtype)).clamp(0, 1)
    b[1] = a[1]  # the second pair identical
    want = peak_signal_noise_ratio(b, a, data_range=1.0, reduction="none", dim=(1, 2, 3))
    got = ops.psnr(b, a)
    assert got[1] == float("inf") and want[1] == float("inf")
    assert torch.isfinite(got[0]) and float(got[0]) == pytest.approx(float(want[0]), rel=1e-6)  # its range in fp32
    signed = ops.psnr(b.float() * 2 - 1, a.float() * 2 - 1, data_range=2.0)  # [-1, 1] images: same figures
    assert signed[1] == float("inf") and float(signed[0]) == pytest.approx(float(want[0]), rel=1e-4)


def test_ssim_matches_scikit_image():
    """torchmetrics reflect-pads by the window radius (5) and averages the SSIM map over every pixel;
    scikit-image on the same padded image gives that map in its interior, independent of its own borders."""
    rng = np.random.default_rng(1)
    a = rng.random((2, 3, 32, 32))
    b = np.clip(a * 0.7 + rng.normal(0, 0.1, a.shape) + 0.1, 0, 1)
    expected = []
    for i in range(2):
        pa, pb = (np.pad(x[i], ((0, 0), (5, 5), (5, 5)), mode="reflect") for x in (a, b))
        _, full = structural_similarity(
            pb, pa, data_range=1.0, channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            full=True,
        )  # fmt: skip
        expected.append(full[:, 5:-5, 5:-5].mean())
    got = metrics.ssim(torch.from_numpy(b), torch.from_numpy(a))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)
    assert 0.2 < expected[0] < 0.95  # a real, non-trivial SSIM


def test_fid_equals_closed_form_for_two_gaussian_feature_sets():
    rng = np.random.default_rng(2)
    x = rng.multivariate_normal([0, 0, 0, 0], np.diag([1.0, 2.0, 0.5, 1.0]), 400)
    a = rng.normal(size=(4, 4))
    y = rng.multivariate_normal([1, -1, 0.5, 2], a @ a.T + np.eye(4), 300)
    got = metrics.fid(torch.from_numpy(x), torch.from_numpy(y))
    assert got == pytest.approx(closed_form_fid(x, y), rel=1e-6)
    assert got > 5  # the means alone are 6.25 apart
    assert metrics.fid(torch.from_numpy(x), torch.from_numpy(x)) == pytest.approx(0, abs=1e-6)


def test_fid_through_folders_and_injected_extractor(tmp_path):
    """Constant-colour images: their mean colours are the features, so FID has a closed form."""
    rng = np.random.default_rng(3)
    colours = {
        "real": np.clip(rng.normal(100, 20, (12, 3)), 0, 255).round(),
        "fake": np.clip(rng.normal(140, 30, (10, 3)), 0, 255).round(),
    }
    for name, cols in colours.items():
        (tmp_path / name).mkdir()
        for i, c in enumerate(cols):
            Image.new("RGB", (8 + 4 * (i % 2), 8), tuple(int(v) for v in c)).save(tmp_path / name / f"{i}.png")
    report = metrics.evaluate(tmp_path / "real", tmp_path / "fake", "fid", extractor=ChannelMean(), batch_size=4)
    (score,) = report.scores
    assert score.value == pytest.approx(closed_form_fid(colours["real"], colours["fake"]), rel=1e-5)
    assert score.extractor == "ChannelMean" and score.implementation.startswith("torch-fidelity")
    assert report.counts == {"real": 12, "fake": 10} and report.exit_code == 0


def test_kid_equals_hand_computed_unbiased_mmd():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(5, 3)), rng.normal(1.0, 1.0, size=(5, 3))

    def k(a, b):
        return (a @ b.T / 3 + 1) ** 3

    m = 5
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    expected = (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    )
    # subsets as large as the sets are permutations of them: every subset gives the same MMD
    mean, std = metrics.kid(torch.from_numpy(x), torch.from_numpy(y), subsets=4, subset_size=1000)
    assert mean == pytest.approx(expected, rel=1e-9)
    assert std == pytest.approx(0, abs=1e-9)


def test_inception_score_hand_computed():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.5, 3.0], [1.0, 1.0, 1.0]])
    p = logits.double().softmax(1).numpy()
    q = p.mean(0)
    expected = np.exp(np.mean((p * (np.log(p) - np.log(q))).sum(1)))
    mean, std = metrics.inception_score(logits, splits=1)
    assert mean == pytest.approx(expected, rel=1e-12) and std == 0
    # confident, distinct predictions over 4 classes score ~4
    assert metrics.inception_score(50 * torch.eye(4), splits=1)[0] == pytest.approx(4, rel=1e-6)


def test_precision_recall_hand_example():
    """1-D features. Real 0..4 have 3-NN radii 3,2,2,2,3; fakes 2.5,10,11,12 have radii 9.5,7.5,8.5,9.5.
    Only the fake at 2.5 lies in a real ball (precision 1/4); every real lies in the 2.5 ball (recall 1)."""
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])
    fake = torch.tensor([[2.5], [10.0], [11.0], [12.0]])
    assert metrics.precision_recall(real, fake, k=3) == (pytest.approx(0.25), pytest.approx(1.0))
    with pytest.raises(UsageError, match="at least 4"):
        metrics.precision_recall(real[:3], fake)


def test_missing_pairs_are_named(tmp_path):
    for name, stems in (("real", ["a", "b", "c"]), ("fake", ["a", "b", "d"])):
        (tmp_path / name / "sub").mkdir(parents=True)
        for s in stems:
            Image.new("RGB", (8, 8)).save(tmp_path / name / "sub" / f"{s}.png")
    with pytest.raises(UsageError) as err:
        metrics.evaluate(tmp_path / "real", tmp_path / "fake", "psnr")
    msg = str(err.value)
    assert "in --fake have no partner in --real (sub/d)" in msg and "in --real have no partner in --fake (sub/c)" in msg


def test_paired_metrics_match_by_name_skip_bad_and_write_csv(tmp_path):
    write_images(tmp_path / "real", 3, (16, 16), seed=1)
    write_images(tmp_path / "fake", 3, (16, 16), seed=2, ext=".jpg")  # extension differs: still paired
    (tmp_path / "fake" / "img001.jpg").write_bytes(b"not an image")
    write_images(tmp_path / "real2", 1, (16, 16))
    Image.new("RGB", (8, 8)).save(tmp_path / "real" / "small.png")
    Image.new("RGB", (16, 8)).save(tmp_path / "fake" / "small.png")  # another aspect ratio: skipped
    report = metrics.evaluate(tmp_path / "real", tmp_path / "fake", "psnr,ssim", csv_path=tmp_path / "s.csv")
    failed = dict(report.failed)
    assert set(failed) == {str(tmp_path / "fake" / "img001.jpg"), str(tmp_path / "fake" / "small.png")}
    assert "not an image" in failed[str(tmp_path / "fake" / "img001.jpg")]
    assert "another aspect ratio" in failed[str(tmp_path / "fake" / "small.png")]
    assert report.exit_code == 1 and report.counts["pairs"] == 2
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "name,real,fake,psnr,ssim" and [line.split(",")[0] for line in lines[1:]] == ["img000", "img002"]
    # the reported mean is the mean of the per-image values
    psnrs = [float(line.split(",")[3]) for line in lines[1:]]
    psnr = next(s for s in report.scores if s.metric == "psnr")
    assert psnr.value == pytest.approx(np.mean(psnrs), rel=1e-5)


def test_bad_images_skipped_and_named_in_distribution_metrics(tmp_path):
    write_images(tmp_path / "real", 5, (12, 12), seed=1)
    write_images(tmp_path / "fake", 5, (12, 12), seed=2)
    (tmp_path / "fake" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    report = metrics.evaluate(tmp_path / "real", tmp_path / "fake", "fid,kid,prc", extractor=ChannelMean())
    assert [p for p, _ in report.failed] == [str(tmp_path / "fake" / "broken.png")]
    assert report.counts == {"real": 5, "fake": 5} and report.exit_code == 1
    assert [s.metric for s in report.scores] == ["fid", "kid", "precision", "recall"]


def test_offline_inception_is_unavailable_but_psnr_still_computed(tmp_path):
    write_images(tmp_path / "real", 2, (16, 16), seed=1)
    write_images(tmp_path / "fake", 2, (16, 16), seed=2)
    report = metrics.evaluate(tmp_path / "real", tmp_path / "fake", "fid,is,psnr,lpips")
    assert set(report.unavailable) == {"fid", "is", "lpips"} and report.exit_code == 3
    assert "anime weights import backbone:inception" in report.unavailable["fid"]
    assert "anime weights import backbone:alexnet" in report.unavailable["lpips"]
    assert [s.metric for s in report.scores] == ["psnr"]


def test_known_weights_are_in_the_weights_catalog(tiny_registry):
    from anime_core.weights.catalog import catalog

    entries = catalog(tiny_registry)
    assert entries["backbone:inception"].source.url.endswith("weights-inception-2015-12-05-6726825d.pth")
    assert entries["backbone:alexnet"].source.sha256.startswith("7be5be79")  # full digest pinned


#: torchvision AlexNet ``features`` conv shapes (index: out, in, kernel)
ALEXNET_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}


def test_lpips_uses_the_cached_alexnet_weights():
    torch.manual_seed(0)
    alex = {}
    for i, (o, c, k) in ALEXNET_CONVS.items():
        alex[f"features.{i}.weight"] = torch.randn(o, c, k, k) * (2 / (c * k * k)) ** 0.5
        alex[f"features.{i}.bias"] = torch.zeros(o)
    lp = metrics.LPIPS(alex)
    assert torch.equal(getattr(lp.net.net.slice5, "10").weight, alex["features.10.weight"])
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    assert torch.equal(lp(a, a), torch.zeros(2))
    assert (lp(a, b) > 0).all()


@pytest.mark.slow
def test_inception_loads_verified_weights_from_the_cache(tmp_path, monkeypatch):
    """A random-weights stand-in (the real file cannot be downloaded here) goes through import + fetch."""
    from unittest import mock

    from torch_fidelity import feature_extractor_inceptionv3 as tfi

    from anime_core.metrics import inception
    from anime_core.weights import import_file

    with (
        mock.patch.object(tfi, "load_state_dict_from_url", return_value={}),
        mock.patch.object(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None),
    ):
        state = tfi.FeatureExtractorInceptionV3("x", ["2048"]).state_dict()
    torch.save(state, tmp_path / "inception.pth")
    digest = hashlib.sha256((tmp_path / "inception.pth").read_bytes()).hexdigest()
    source = WeightsSource(url="https://example.invalid/inception.pth", sha256=digest)
    monkeypatch.setattr(inception, "INCEPTION_SOURCE", source)
    import_file(inception.INCEPTION_KEY, source, tmp_path / "inception.pth")
    model = inception.InceptionV3Features()
    assert torch.equal(model.net.fc.weight, state["fc.weight"])
    assert model.net.features_list == ["2048", "logits_unbiased"]
