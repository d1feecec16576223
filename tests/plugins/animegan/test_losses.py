"""AnimeGAN losses (Liu, Chen, Hu, "AnimeGAN: a novel lightweight GAN for photo animation", section 3.2, eq. 2-6)
against values computed by hand on tiny tensors."""

from __future__ import annotations

import pytest
import torch
from anime_plugin_animegan.losses import (
    AnimeGANDiscriminatorLoss,
    ColorYUVLoss,
    GramGrayscaleLoss,
    VGGContentLoss,
    gram,
    grayscale,
    rgb_to_yuv,
    style_loss,
)
from torch import nn

from anime_core.registry import get_registry


def test_gram_is_normalised_by_c_h_w():
    f = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 2, 1, 2)  # channels [1, 2] and [3, 4]
    # F F^T = [[1+4, 3+8], [3+8, 9+16]] = [[5, 11], [11, 25]]; C*H*W = 4
    assert torch.allclose(gram(f), torch.tensor([[[1.25, 2.75], [2.75, 6.25]]]))


def test_style_loss_l1_of_grams():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 2, 1, 2)
    b = torch.zeros(1, 2, 1, 2)
    # mean |G(a) - 0| = (1.25 + 2.75 + 2.75 + 6.25) / 4 = 3.25
    assert style_loss(a, b).item() == pytest.approx(3.25)


def test_gram_grayscale_module_compares_against_the_grayscale_anime_image():
    loss = GramGrayscaleLoss(extractor=nn.Identity())  # features = the image itself
    fake = torch.zeros(1, 3, 1, 1)
    anime = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)  # pure red -> luma 0.299 on all channels
    # Gram of gray: every entry 0.299^2 / 3; L1 against zeros averages 9 equal entries
    assert loss(fake, anime).item() == pytest.approx(0.299**2 / 3, rel=1e-5)
    gray = grayscale(anime)
    assert torch.allclose(grayscale(gray), gray)  # idempotent: prepared gray images pass unchanged


def test_content_loss_is_l1_of_features():
    loss = VGGContentLoss(extractor=nn.Identity())
    photo = torch.tensor([0.5, -0.5, 1.0, 0.0]).view(1, 1, 2, 2)
    fake = torch.tensor([0.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 2)
    assert loss(photo, fake).item() == pytest.approx((0.5 + 0.5 + 1.0 + 0.0) / 4)


def test_vgg_content_uses_conv4_4_of_the_shared_vgg():
    loss = VGGContentLoss(pretrained=False)
    assert loss.extractor.layers == ("conv4_4",)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0
    assert loss.features(x).shape == (1, 512, 4, 4)  # conv4_4: 512 channels at 1/8


def test_yuv_matrix_bt601():
    white = torch.ones(1, 3, 1, 1)  # [-1, 1] -> 1.0
    assert torch.allclose(rgb_to_yuv(white).flatten(), torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)
    assert torch.allclose(rgb_to_yuv(red).flatten(), torch.tensor([0.299, -0.14714119, 0.61497538]))


def test_color_loss_l1_on_y_huber_on_u_v():
    photo = -torch.ones(1, 3, 1, 2)  # black
    fake = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]]).view(1, 3, 1, 2)  # red in [-1, 1]
    # Y: |0.299 - 0| ; U: huber(-0.14714) = 0.5 * 0.14714^2 ; V: huber(0.61498) = 0.5 * 0.61498^2 (all < delta 1)
    expected = 0.299 + 0.5 * 0.14714119**2 + 0.5 * 0.61497538**2
    assert ColorYUVLoss()(photo, fake).item() == pytest.approx(expected, rel=1e-5)
    big = torch.tensor([4.0, 0.0, 0.0]).view(1, 3, 1, 1) * 2 - 1  # R=4 (out of range) makes |V| > 1: linear part
    v = 0.61497538 * 4
    y = 0.299 * 4
    u = 0.14714119 * 4
    expected = y + 0.5 * u**2 + (v - 0.5)
    assert ColorYUVLoss()(-torch.ones(1, 3, 1, 1), big).item() == pytest.approx(expected, rel=1e-5)


def test_discriminator_loss_eq6():
    loss = AnimeGANDiscriminatorLoss()
    real, fake = torch.tensor([0.5, 1.0]), torch.tensor([0.5, -1.0])
    gray, smooth = torch.tensor([2.0]), torch.tensor([3.0])
    # E(D(a)-1)^2 = (0.25 + 0)/2 ; E D(G(p))^2 = (0.25 + 1)/2 ; E D(x)^2 = 4 ; 0.1 E D(y)^2 = 0.9
    assert loss(real, fake, gray, smooth).item() == pytest.approx(0.125 + 0.625 + 4 + 0.9)
    no_gray = AnimeGANDiscriminatorLoss(gray_weight=0.0)
    assert no_gray(real, fake, gray, smooth).item() == pytest.approx(0.125 + 0.625 + 0.9)


def test_discriminator_loss_takes_the_runs_adversarial_loss():
    reg = get_registry()
    loss = reg.loss("animegan_d").builder()(adversarial=reg.loss("hinge").builder()(), edge_weight=0.5)
    real, fake = torch.tensor([0.5, 2.0]), torch.tensor([0.5, -2.0])
    gray, smooth = torch.tensor([2.0]), torch.tensor([-0.5])
    # hinge: E relu(1-D(a)) = 0.25 ; E relu(1+D(G(p))) = 0.75 ; E relu(1+D(x)) = 3 ; 0.5 E relu(1+D(y)) = 0.25
    assert loss(real, fake, gray, smooth).item() == pytest.approx(0.25 + 0.75 + 3 + 0.25)


def test_losses_are_registered():
    reg = get_registry()
    for name in ("vgg_content", "gram_grayscale", "color_yuv", "animegan_d"):
        assert reg.losses[name].plugin == "animegan"
