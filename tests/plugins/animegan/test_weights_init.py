"""AnimeGAN's initial weights as the authors' TF code draws them (``train.weight_init``), and Fig. 5 "B"."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from anime_plugin_animegan.discriminator import Discriminator
from anime_plugin_animegan.generator import GeneratorV1, GeneratorV2, InvertedResidual
from anime_plugin_animegan.weights_init import init_discriminator, init_generator, tf_fans
from helpers import write_images
from torch import nn

from anime_core import config as cfglib
from anime_core.ops import _raw_weight
from anime_core.registry import get_registry
from anime_core.training.task import StepContext


def _convs(net: nn.Module, min_size: int = 20_000) -> list[nn.Conv2d]:
    """The convolutions large enough for their sample statistics to be tight."""
    return [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.weight.numel() >= min_size]


def test_tf_fans_count_a_depthwise_kernel_as_tensorflow_does():
    assert tf_fans(nn.Conv2d(8, 16, 3)) == (72, 144)
    assert tf_fans(nn.Conv2d(8, 8, 3, groups=8)) == (72, 9)  # TF kernel [3, 3, 8, 1]


def test_v1_official_is_xavier_uniform_with_truncated_normal_depthwise_in_the_residual_blocks():
    torch.manual_seed(0)
    g = init_generator(GeneratorV1(), "v1", "official")
    depthwise = [m for b in g.modules() if isinstance(b, InvertedResidual) for m in b.modules()
                 if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 8
    for conv in depthwise:  # N(0, 0.02) truncated at 2 deviations: sample std 0.88 x 0.02
        assert conv.weight.abs().max() <= 0.04 and 0.015 < float(conv.weight.detach().std()) < 0.02
    for conv in _convs(g):
        if conv in depthwise:
            continue
        fan_in, fan_out = tf_fans(conv)
        limit = math.sqrt(6 / (fan_in + fan_out))
        assert conv.weight.abs().max() <= limit
        # U(-a, a) has standard deviation a / sqrt(3)
        assert float(conv.weight.detach().std()) == pytest.approx(limit / math.sqrt(3), rel=0.05)


def test_v2_official_is_he_truncated_normal_everywhere():
    torch.manual_seed(0)
    g = init_generator(GeneratorV2(), "v2", "official")
    convs = _convs(g, 2_000)
    assert any(c.groups > 1 for c in convs)
    for conv in convs:  # truncated N(0, 1.3 * 2 / fan_in) at 2 deviations: sample variance ~ 2 / fan_in
        std = math.sqrt(1.3 * 2 / tf_fans(conv)[0])
        assert conv.weight.abs().max() <= 2 * std
        assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2 / tf_fans(conv)[0]), rel=0.1)


def test_discriminator_is_normal_002_under_spectral_norm_and_pytorch_leaves_everything():
    torch.manual_seed(0)
    d = init_discriminator(Discriminator(), "official")
    for m in d.modules():
        if isinstance(m, nn.Conv2d) and m.out_channels > 1:
            assert float(_raw_weight(m).detach().std()) == pytest.approx(0.02, rel=0.1)
    torch.manual_seed(1)
    plain = GeneratorV1()
    torch.manual_seed(1)
    kept = init_generator(GeneratorV1(), "v1", "pytorch")
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), kept.state_dict().values()))


def _task(tmp_path, *extra):
    write_images(tmp_path / "photo", 2, size=(36, 36), seed=1)
    write_images(tmp_path / "anime", 2, size=(36, 36), seed=2)
    spec = get_registry().model("animegan")
    cfg = cfglib.resolve(spec, extra[0] if extra and not extra[0].count("=") else None, [
        f"data.photo={tmp_path / 'photo'}", f"data.anime={tmp_path / 'anime'}", "train.image_size=32",
        "loss.vgg_pretrained=false", "data.num_workers=0", "discriminator.width=8", "train.init_epochs=0",
        *[e for e in extra if "=" in e]])
    return spec.task_class()(spec, cfg, get_registry())


def test_the_task_applies_the_configured_init(tmp_path):
    task = _task(tmp_path, "train.weight_init=he")
    task.build(steps_per_epoch=1)
    conv = task.nets["generator"].m[1].body[2]  # an inverted residual's depthwise conv: He, not N(0, 0.02)
    assert conv.weight.abs().max() > 0.04


def test_edge_color_preset_trains_the_edge_term_on_colour_edge_smoothed_frames(tmp_path):
    task = _task(tmp_path, "edge-color")
    assert task.cfg.data.edge_images == "color"
    data = task.dataset()
    item = data[0]
    assert set(item) == {"photo", "anime", "anime_gray", "anime_smooth"}
    smooth = item["anime_smooth"]
    assert not torch.equal(smooth[0], smooth[1])  # colour, unlike the grayscale copies
    prepared = Path(task.cfg.data.prepared_cache)
    assert sorted(p.name for p in (prepared / "smooth_color").iterdir()) == ["img000.png", "img001.png"]
    task.build(steps_per_epoch=1)
    logs = task.step(torch.utils.data.default_collate([data[0], data[1]]), StepContext(Accelerator(cpu=True), 0, 0, 1))
    assert torch.isfinite(logs["d_loss"])
