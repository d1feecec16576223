"""Checkpoints of the CycleGAN/pix2pix PyTorch code load and reproduce the original network.

The original networks are re-implemented here from their published layer lists (a ``model``
``nn.Sequential``; the U-Net as nested blocks, each returning ``[input, block(input)]`` and using
in-place activations), given random weights and non-trivial norm statistics, and saved as that code
saves them: ``torch.save(net.state_dict(), "latest_net_G_A.pth")``. ``anime run`` must then write
the original network's image to within 2/255.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from anime_plugin_cyclegan.generator import Pix2PixUNet, ResNetGenerator
from click.testing import CliRunner
from helpers import make_image
from PIL import Image
from torch import nn

import anime_core
from anime_core.cli import cli
from anime_core.weights import load_weights
from anime_plugin_cyclegan import converters

# -- the original networks (independent re-implementation of their layer lists) --------------------


def _norm(kind: str, c: int) -> nn.Module:
    return nn.BatchNorm2d(c) if kind == "batch" else nn.InstanceNorm2d(c)


class TheirResnetBlock(nn.Module):
    def __init__(self, c: int, norm: str, dropout: bool) -> None:
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=bias), _norm(norm, c), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3, bias=bias), _norm(norm, c)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class TheirResnetGenerator(nn.Module):
    def __init__(self, ngf: int, n_blocks: int, norm: str = "instance", dropout: bool = False) -> None:
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7, bias=bias), _norm(norm, ngf), nn.ReLU(True)]
        for m in (1, 2):
            layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, 2, 1, bias=bias), _norm(norm, ngf * m * 2), nn.ReLU(True)]
        layers += [TheirResnetBlock(ngf * 4, norm, dropout) for _ in range(n_blocks)]
        for m in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, 2, 1, output_padding=1, bias=bias),
                       _norm(norm, ngf * m // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class TheirUnetBlock(nn.Module):
    def __init__(self, outer: int, inner: int, norm: str, sub: nn.Module | None = None, input_nc: int | None = None,
                 outermost: bool = False, dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        down = nn.Conv2d(input_nc or outer, inner, 4, 2, 1, bias=bias)
        if outermost:
            layers = [down, sub, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif sub is None:  # innermost
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=bias), _norm(norm, outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, _norm(norm, inner), sub, nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=bias), _norm(norm, outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class TheirUnetGenerator(nn.Module):
    def __init__(self, num_downs: int, ngf: int, norm: str, dropout: bool = False) -> None:
        super().__init__()
        block = TheirUnetBlock(ngf * 8, ngf * 8, norm)
        for _ in range(num_downs - 5):
            block = TheirUnetBlock(ngf * 8, ngf * 8, norm, block, dropout=dropout)
        for outer in (4, 2, 1):
            block = TheirUnetBlock(ngf * outer, ngf * outer * 2, norm, block)
        self.model = TheirUnetBlock(3, ngf, norm, block, input_nc=3, outermost=True)

    def forward(self, x):
        return self.model(x)


class TheirNLayerDiscriminator(nn.Module):
    def __init__(self, ndf: int, n_layers: int, norm: str) -> None:
        super().__init__()
        bias = norm == "instance"
        layers = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias), _norm(norm, ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def _randomise(net: nn.Module, seed: int) -> nn.Module:
    """Random weights, biases and batch-norm statistics, so a wrong mapping or wiring shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight[:, 0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in**0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(100)
    return net.eval()


def _old_instance_norm_buffers(net: nn.Module, state: dict) -> dict:
    """What files written before PyTorch 0.4 also hold: InstanceNorm running statistics nothing uses."""
    for name, m in net.named_modules():
        if isinstance(m, nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.randn(m.num_features)
            state[f"{name}.running_var"] = torch.rand(m.num_features) + 0.5
            state[f"{name}.num_batches_tracked"] = torch.tensor(7)
    return state


def _save(net: nn.Module, path, old_buffers: bool = False):
    state = dict(net.state_dict())
    if old_buffers:
        state = _old_instance_norm_buffers(net, state)
    torch.save(state, path)
    return path


def _run_and_compare(net: nn.Module, weights, tmp_path, size: tuple[int, int]) -> tuple[float, float]:
    """``anime run cyclegan --weights`` on a test image against ``net``; (max, mean) difference in 8-bit levels."""
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    make_image(size, 3).save(src)
    res = CliRunner().invoke(cli, ["run", "cyclegan", "--weights", str(weights), str(src), "-o", str(out),
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    got = np.asarray(Image.open(out).convert("RGB")).astype(np.float64)
    x = torch.from_numpy(np.array(Image.open(src))).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():  # the original code's test recipe: [-1, 1] in, (y + 1) / 2 * 255 out
        want = ((net(x * 2 - 1)[0].permute(1, 2, 0) + 1) / 2 * 255).clamp(0, 255).numpy()
    diff = np.abs(got - want)
    assert got.shape == want.shape
    assert want.std() > 8 and ((want > 2) & (want < 253)).mean() > 0.5  # not a saturated, constant image
    return float(diff.max()), float(diff.mean())


# -- ResNet generators --------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_blocks", "norm", "dropout", "old"), [
    (9, "instance", False, False),  # CycleGAN's resnet_9blocks as saved today
    (6, "instance", False, True),  # resnet_6blocks written before PyTorch 0.4 (InstanceNorm buffers)
    (6, "batch", True, False),  # pix2pix options: --netG resnet_6blocks --norm batch, with dropout
])
def test_resnet_generator_runs_like_the_original(tmp_path, n_blocks, norm, dropout, old):
    net = _randomise(TheirResnetGenerator(8, n_blocks, norm, dropout), seed=n_blocks)
    path = _save(net, tmp_path / "latest_net_G_A.pth", old_buffers=old)
    loaded = load_weights(path, "cyclegan", anime_core.registry.get_registry())
    assert loaded.layout == converters.LAYOUT_RESNET
    assert loaded.generator == {"arch": "resnet", "width": 8, "n_blocks": n_blocks, "attention": "none", "norm": norm}
    worst, mean = _run_and_compare(net, path, tmp_path, (44, 36))
    assert worst <= 2.0 and mean < 0.6, (worst, mean)


def test_resnet_with_a_dataparallel_prefix_and_its_parameters_one_to_one():
    net = _randomise(TheirResnetGenerator(4, 2), seed=0)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    assert converters.matches_resnet(state) and not converters.matches_unet(state)
    native, _ = converters.convert_resnet(state)
    ours = ResNetGenerator(width=4, n_blocks=2)
    ours.load_state_dict(native, strict=True)
    assert sum(t.numel() for t in native.values()) == sum(t.numel() for t in net.state_dict().values())
    # the index arithmetic: model.{10+n} and model.{17+n} are the first transposed and the last conv
    assert torch.equal(native["decoder.0.weight"], state["module.model.12.weight"])
    assert torch.equal(native["decoder.7.weight"], state["module.model.19.weight"])
    assert torch.equal(native["blocks.1.body.5.weight"], state["module.model.11.conv_block.5.weight"])


# -- U-Nets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("num_downs", "norm", "dropout", "old"), [
    (8, "batch", True, False),  # pix2pix defaults: unet_256, --norm batch, dropout in the middle levels
    (7, "instance", False, True),  # CycleGAN --netG unet_128, written before PyTorch 0.4
])
def test_unet_runs_like_the_original(tmp_path, num_downs, norm, dropout, old):
    net = _randomise(TheirUnetGenerator(num_downs, 4, norm, dropout), seed=num_downs)
    path = _save(net, tmp_path / "latest_net_G.pth", old_buffers=old)
    loaded = load_weights(path, "cyclegan", anime_core.registry.get_registry())
    assert loaded.layout == converters.LAYOUT_UNET
    assert loaded.generator == {"arch": "pix2pix-unet", "width": 4, "n_downs": num_downs, "norm": norm,
                                "attention": "none"}
    side = 2**num_downs
    worst, mean = _run_and_compare(net, path, tmp_path, (side, side))
    assert worst <= 2.0 and mean < 0.6, (worst, mean)
    pipe = anime_core.load("cyclegan", weights=path, device="cpu")
    assert isinstance(pipe.generator, Pix2PixUNet) and pipe.generator.stride == side


def test_pix2pix_unet_matches_the_original_on_a_batch_of_non_square_images():
    net = _randomise(TheirUnetGenerator(5, 4, "instance"), seed=5)
    native, options = converters.convert_unet(net.state_dict())
    ours = anime_core.build("cyclegan", "generator", **options).eval()
    ours.load_state_dict(native, strict=True)
    x = torch.rand(2, 3, 64, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x), net(x), atol=1e-5, rtol=1e-5)


# -- the PatchGAN discriminator --------------------------------------------------------------------


@pytest.mark.parametrize(("n_layers", "norm"), [(3, "instance"), (3, "batch"), (2, "instance")])
def test_patchgan_converts_to_our_discriminator(tmp_path, n_layers, norm):
    net = _randomise(TheirNLayerDiscriminator(8, n_layers, norm), seed=n_layers)
    path = _save(net, tmp_path / "latest_net_D_A.pth")
    state = torch.load(path, weights_only=True)
    assert converters.matches_patchgan(state) and not converters.matches_resnet(state)
    native, options = converters.convert_patchgan(state)
    assert options == {"width": 8, "n_layers": n_layers, "norm": norm, "attention": False}
    ours = anime_core.build("cyclegan", "discriminator", **options).eval()
    ours.load_state_dict(native, strict=True)
    x = torch.rand(2, 3, 70, 70) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x), net(x), atol=1e-5, rtol=1e-5)
    if n_layers == 3:  # the facts: model.{0,2,5} -> features, model.{8,11} -> head
        assert torch.equal(native["features.5.weight"], state["model.5.weight"])
        assert torch.equal(native["head.0.weight"], state["model.8.weight"])
        assert torch.equal(native["head.3.weight"], state["model.11.weight"])


# -- recognition and the closest-layout message -------------------------------------------------------


def test_describe_names_the_layout_and_what_differs():
    d = TheirNLayerDiscriminator(8, 3, "instance").state_dict()
    assert "PatchGAN discriminator" in converters.describe(d) and "latest_net_G_A.pth" in converters.describe(d)
    assert not converters.matches_resnet(d) and not converters.matches_unet(d)

    gray = TheirResnetGenerator(8, 6).state_dict()
    gray["model.1.weight"] = gray["model.1.weight"][:, :1]  # a one-channel (grayscale) input
    assert not converters.matches_resnet(gray)
    text = converters.describe(gray)
    assert "ResNet-6 generator" in text and "model.1.weight is [8, 1, 7, 7]" in text and "[8, 3, 7, 7]" in text

    unet = TheirUnetGenerator(8, 4, "batch").state_dict()
    assert "U-Net generator (unet_256, batch norm)" in converters.describe(unet)
    unet["model.model.1.model.9.weight"] = torch.zeros(1)
    assert not converters.matches_unet(unet)
    assert "model.model.1.model.9.weight" in converters.describe(unet)

    assert converters.describe({"conv.weight": torch.zeros(1)}) is None
    assert converters.describe(ResNetGenerator(width=4, n_blocks=1).state_dict()) is None  # native keys


def test_options_a_foreign_generator_arch_does_not_take_are_usage_errors():
    from anime_core.errors import UsageError

    with pytest.raises(UsageError, match="attention does not apply to arch=pix2pix-unet"):
        anime_core.build("cyclegan", "generator", arch="pix2pix-unet", attention="both", width=4)
    with pytest.raises(UsageError, match="norm does not apply to arch=unet"):
        anime_core.build("cyclegan", "generator", arch="unet", norm="batch", width=4)
    with pytest.raises(UsageError, match="norm='group'"):
        anime_core.build("cyclegan", "generator", arch="resnet", norm="group", width=4)


def test_training_the_pix2pix_unet_checks_its_crop_size(registry):
    from anime_core.config import resolve
    from anime_core.errors import ConfigError

    spec = registry.model("cyclegan")
    unet128 = ["generator.arch=pix2pix-unet", "generator.n_downs=7", "generator.norm=batch"]
    with pytest.raises(ConfigError, match="pix2pix U-Net needs train.image_size >= 128"):
        resolve(spec, None, [*unet128, "train.image_size=64"])
    with pytest.raises(ConfigError, match="pix2pix U-Net needs train.image_size to be a multiple of 128, not 320"):
        resolve(spec, None, [*unet128, "train.image_size=320", "data.load_size=320"])
    cfg = resolve(spec, None, [*unet128, "train.image_size=128"])
    g = registry.build(spec, "generator", **{**cfg.generator, "width": 4})
    assert isinstance(g, Pix2PixUNet) and g.stride == 128


def test_a_discriminator_given_to_anime_run_names_what_it_is(registry, tmp_path):
    """The closest-layout clause reaches the user, whichever model the file was given to."""
    import anime_core
    from anime_core.errors import WeightsUnavailable

    path = tmp_path / "latest_net_D_A.pth"
    torch.save(TheirNLayerDiscriminator(8, 3, "instance").state_dict(), path)
    for model in ("cyclegan", "animegan"):
        with pytest.raises(WeightsUnavailable, match="looks like a .*PatchGAN discriminator.*latest_net_G_A.pth"):
            anime_core.load(model, weights=path, device="cpu")
