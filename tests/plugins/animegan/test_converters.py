"""pytorch-animeGAN (ptran1203) ``GeneratorV2_*.pt`` files load and reproduce the original network.

The original ``GeneratorV2`` is re-implemented here from its published layer list (blocks
``conv_block1`` ... ``decode_blocks`` of ``ConvBlock``s and ``InvertedResBlock``s, GroupNorm with one
group, doubling with ``F.interpolate(scale_factor=2, mode="bilinear")``), given random weights and
saved as its training code saves it: ``{"model_state_dict": ..., "epoch": ..., "optimizer_state_dict": ...}``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from anime_plugin_animegan.generator import GeneratorV2
from click.testing import CliRunner
from helpers import make_image
from PIL import Image
from torch import nn

import anime_core
from anime_core.cli import cli
from anime_core.registry import get_registry
from anime_core.weights import load_weights
from anime_plugin_animegan import converters

# -- the original network (independent re-implementation of its layer list) -------------------------


class TheirConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1, groups: int = 1, padding=1,
                 bias: bool = False) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(padding)
        self.conv = nn.Conv2d(c_in, c_out, k, stride, 0, groups=groups, bias=bias)
        self.ins_norm = nn.GroupNorm(1, c_out, affine=True)
        self.activation = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        return self.activation(self.ins_norm(self.conv(self.pad(x))))


class TheirInvertedResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        hidden = 2 * c_in
        self.conv_block = TheirConvBlock(c_in, hidden, k=1, padding=0)
        self.conv_block2 = TheirConvBlock(hidden, hidden, groups=hidden, bias=True)
        self.conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self.norm = nn.GroupNorm(1, c_out, affine=True)

    def forward(self, x):
        out = self.norm(self.conv(self.conv_block2(self.conv_block(x))))
        return out if out.shape[1] != x.shape[1] else out + x


class TheirGeneratorV2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        down = (0, 1, 0, 1)
        self.conv_block1 = nn.Sequential(TheirConvBlock(3, 32, k=7, padding=3),
                                         TheirConvBlock(32, 64, stride=2, padding=down), TheirConvBlock(64, 64))
        self.conv_block2 = nn.Sequential(TheirConvBlock(64, 128, stride=2, padding=down), TheirConvBlock(128, 128))
        self.res_blocks = nn.Sequential(TheirConvBlock(128, 128), TheirInvertedResBlock(128, 256),
                                        *[TheirInvertedResBlock(256, 256) for _ in range(3)],
                                        TheirConvBlock(256, 128))
        self.conv_block3 = nn.Sequential(TheirConvBlock(128, 128), TheirConvBlock(128, 128))
        self.conv_block4 = nn.Sequential(TheirConvBlock(128, 64), TheirConvBlock(64, 64),
                                         TheirConvBlock(64, 32, k=7, padding=3))
        self.decode_blocks = nn.Sequential(nn.Conv2d(32, 3, 1), nn.Tanh())

    def forward(self, x):
        out = self.res_blocks(self.conv_block2(self.conv_block1(x)))
        out = self.conv_block3(F.interpolate(out, scale_factor=2, mode="bilinear"))
        out = self.conv_block4(F.interpolate(out, scale_factor=2, mode="bilinear"))
        return self.decode_blocks(out)


def _their_checkpoint(path, seed: int = 0) -> TheirGeneratorV2:
    torch.manual_seed(seed)
    net = TheirGeneratorV2()
    with torch.no_grad():  # non-trivial norm parameters and output bias, so a wrong mapping would show
        for m in net.modules():
            if isinstance(m, nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        net.decode_blocks[0].bias.uniform_(-0.3, 0.3)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))
    torch.save({"model_state_dict": net.state_dict(), "epoch": 7, "optimizer_state_dict": optimizer.state_dict()},
               path)  # their utils.common.save_checkpoint
    return net.eval()


@pytest.fixture
def with_converter(registry):
    """The installed plugins' registry: plugin.py registers the pytorch-animeGAN converter."""
    return registry


def test_the_plugin_registers_the_pytorch_animegan_converter():
    conv = get_registry().converters.get(converters.LAYOUT_PTRAN_V2)
    assert conv is not None and conv.model == "animegan" and conv.matches_fn() is converters.matches_ptran_v2


def test_77_of_78_tensors_map_and_the_78th_is_the_output_bias():
    theirs = TheirGeneratorV2().state_dict()
    assert len(theirs) == 78 and len(GeneratorV2().state_dict()) == 77
    native, options = converters.convert_ptran_v2(theirs)
    assert options == {"variant": "v2", "upsample": "half_pixel", "out_bias": True}
    assert set(native) - set(GeneratorV2().state_dict()) == {"out_layer.0.bias"}
    assert torch.equal(native["block_c.1.layers.1.1.bias"], theirs["res_blocks.1.conv_block2.conv.bias"])
    assert torch.equal(native["block_e.2.2.weight"], theirs["conv_block4.2.ins_norm.weight"])
    assert converters.to_ptran_v2(native).keys() == theirs.keys()


def test_recognised_from_the_keys_only():
    theirs = TheirGeneratorV2().state_dict()
    assert converters.matches_ptran_v2(theirs)
    assert converters.matches_ptran_v2({f"module.{k}": v for k, v in theirs.items()})  # DDP training saves
    assert not converters.matches_v2(theirs) and not converters.matches_ptran_v2(GeneratorV2().state_dict())
    theirs.pop("decode_blocks.0.bias")
    assert not converters.matches_ptran_v2(theirs)
    assert "lacks decode_blocks.0.bias" in converters.describe(theirs)
    assert converters.describe({"encode_blocks.0.conv.weight": torch.zeros(1), "res_blocks.0.conv.weight":
                                torch.zeros(1)}).startswith("looks like a pytorch-animeGAN GeneratorV1")
    assert converters.describe({"conv.weight": torch.zeros(1)}) is None


def test_generator_v2_file_runs_like_the_original(tmp_path, with_converter):
    path = tmp_path / "GeneratorV2_gldv2_Hayao.pt"
    net = _their_checkpoint(path)
    loaded = load_weights(path, "animegan", with_converter)
    assert loaded.layout == converters.LAYOUT_PTRAN_V2 and loaded.generator == converters.PTRAN_V2_OPTIONS

    src, out = tmp_path / "in.png", tmp_path / "out.png"
    make_image((44, 36), 5).save(src)
    res = CliRunner().invoke(cli, ["run", "animegan", "--weights", str(path), str(src), "-o", str(out),
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    got = np.asarray(Image.open(out).convert("RGB")).astype(np.float64)
    x = torch.from_numpy(np.array(Image.open(src))).permute(2, 0, 1)[None].float()
    with torch.no_grad():  # their inference recipe: x / 127.5 - 1 in, y * 127.5 + 127.5 out
        want = (net(x / 127.5 - 1)[0].permute(1, 2, 0) * 127.5 + 127.5).clamp(0, 255).numpy()
    assert got.shape == want.shape == (36, 44, 3) and want.std() > 8
    diff = np.abs(got - want)
    assert diff.max() <= 2.0 and diff.mean() < 0.6, (diff.max(), diff.mean())


def test_sizes_that_are_no_multiple_of_four_keep_their_size(tmp_path, with_converter):
    path = tmp_path / "GeneratorV2_ffhq_Arcane.pt"
    _their_checkpoint(path, seed=1)
    pipe = anime_core.load("animegan", weights=path, device="cpu")
    assert pipe.generator.stride == 4
    assert pipe(make_image((37, 30), 2)).size == (37, 30)
