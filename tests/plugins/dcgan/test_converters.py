"""PyTorch examples DCGAN checkpoints (``netG_epoch_N.pth``, ``netD_epoch_N.pth``) load and reproduce
the original networks.

The original ``Generator``/``Discriminator`` of ``dcgan/main.py`` are re-implemented here from their
layer lists (one ``nn.Sequential`` called ``main``), given random weights and batch-norm statistics,
and saved as that script saves them: ``torch.save(netG.state_dict(), "netG_epoch_24.pth")``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from anime_plugin_dcgan.generator import DCGANGenerator
from click.testing import CliRunner
from PIL import Image
from torch import nn

import anime_core
from anime_core.cli import cli
from anime_core.registry import get_registry
from anime_core.weights import load_weights
from anime_plugin_dcgan import converters


def their_generator(nz: int, ngf: int, nc: int = 3) -> nn.Module:
    net = nn.Module()
    net.main = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
    )
    net.forward = net.main.forward  # (N, nz, 1, 1) -> (N, nc, 64, 64)
    return net


def their_discriminator(ndf: int) -> nn.Module:
    net = nn.Module()
    net.main = nn.Sequential(
        nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
    )
    net.forward = lambda x: net.main(x).view(-1, 1).squeeze(1)
    return net


def _randomise(net: nn.Module, seed: int) -> nn.Module:
    """DCGAN's initialisation, then non-trivial batch-norm statistics, so a wrong mapping would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.05)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 0.05 + 0.01)
                m.num_batches_tracked.fill_(1000)
    return net.eval()


def test_generator_file_is_recognised_and_runs_like_the_original(tmp_path):
    net = _randomise(their_generator(nz=20, ngf=8), seed=0)
    path = tmp_path / "netG_epoch_24.pth"
    torch.save(net.state_dict(), path)
    loaded = load_weights(path, "dcgan", get_registry())
    assert loaded.layout == converters.LAYOUT_GENERATOR
    assert loaded.generator == {"latent_dim": 20, "image_size": 64, "width": 8, "attention": False, "num_classes": 0}

    out = tmp_path / "grid.png"
    res = CliRunner().invoke(cli, ["run", "dcgan", "--weights", str(path), "--num", "4", "--seed", "3", "-o", str(out),
                                   "--device", "cpu"])
    assert res.exit_code == 0, res.output
    pipe = anime_core.load("dcgan", weights=path, device="cpu")
    assert isinstance(pipe.generator, DCGANGenerator)
    z = pipe.latents(4, 3)
    with torch.no_grad():  # their sampling: netG(noise of shape (N, nz, 1, 1)), tanh output in [-1, 1]
        want = ((net(z[:, :, None, None]) + 1) / 2).clamp(0, 1)
    assert want.std() > 0.05
    got = np.asarray(Image.open(out).convert("RGB")).astype(np.float64)
    assert got.shape == (2 * 66 + 2, 2 * 66 + 2, 3)  # the CLI's 2 x 2 sheet, 2 px apart
    for i in range(4):
        r, c = divmod(i, 2)
        tile = got[2 + 66 * r: 66 + 66 * r, 2 + 66 * c: 66 + 66 * c]
        diff = np.abs(tile - want[i].permute(1, 2, 0).numpy() * 255)
        assert diff.max() <= 2.0 and diff.mean() < 0.6, (i, diff.max(), diff.mean())


def test_a_dataparallel_prefix_and_the_layer_indices_are_kept():
    net = their_generator(nz=8, ngf=2)
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    assert converters.matches_generator(state) and not converters.matches_discriminator(state)
    native, _ = converters.convert_generator(state)
    assert torch.equal(native["net.12.weight"], state["module.main.12.weight"])
    assert torch.equal(native["net.10.running_var"], state["module.main.10.running_var"])


@pytest.mark.parametrize("ndf", [4, 8])
def test_discriminator_scores_are_the_logits_of_their_probabilities(tmp_path, ndf):
    net = _randomise(their_discriminator(ndf), seed=ndf)
    path = tmp_path / "netD_epoch_24.pth"
    torch.save(net.state_dict(), path)
    state = torch.load(path, weights_only=True)
    assert converters.matches_discriminator(state) and not converters.matches_generator(state)
    native, options = converters.convert_discriminator(state)
    ours = anime_core.build("dcgan", "discriminator", **options).eval()
    ours.load_state_dict(native, strict=True)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        theirs, logits = net(x), net.main[:-1](x).flatten()  # their output, and it before the final Sigmoid
        torch.testing.assert_close(ours(x), logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(torch.sigmoid(ours(x)), theirs, atol=1e-6, rtol=1e-5)
    assert theirs.shape == (3,) and float(logits.std()) > 0.1


def test_describe_names_the_layout_and_what_differs():
    d = their_discriminator(4).state_dict()
    assert "discriminator checkpoint (netD_epoch_N.pth)" in converters.describe(d)
    assert "netG_epoch_N.pth" in converters.describe(d)
    gray = their_generator(nz=8, ngf=2, nc=1).state_dict()  # the script's MNIST option: one channel
    assert not converters.matches_generator(gray)
    assert "main.12.weight is [2, 1, 4, 4]" in converters.describe(gray) and "[2, 3, 4, 4]" in converters.describe(gray)
    bigger = their_generator(nz=8, ngf=2).state_dict()
    bigger["main.15.weight"] = torch.zeros(1)  # an extra layer: a 128 px variant of the script
    assert not converters.matches_generator(bigger)
    assert "it also holds main.15.weight" in converters.describe(bigger)
    assert converters.describe({"conv.weight": torch.zeros(1)}) is None
