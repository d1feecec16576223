"""AnimeGAN losses: G. Liu, X. Chen, Y. Hu, "AnimeGAN: a novel lightweight GAN for photo animation",
section 3.2, equations 1-6.

- content (eq. 2): L1 between VGG19 ``conv4_4`` features (before ReLU, as the official code's
  ``conv4_4_no_activation``) of the photo and of the generated image;
- grayscale style (eq. 3): L1 between Gram matrices of VGG19 ``conv4_4`` features of the
  generated image and of the *grayscale* anime image; the Gram matrix is divided by C*H*W
  (the official code divides by the feature map's size per image);
- colour reconstruction (eq. 4): images mapped from [-1, 1] to [0, 1] and to YUV with the BT.601
  matrix (TensorFlow's ``rgb_to_yuv``); L1 on Y, Huber (delta 1) on U and V;
- discriminator (eq. 6): the adversarial loss (least squares in the paper) on anime images (real),
  generated images, grayscale anime images and, scaled by 0.1, edge-smoothed grayscale anime
  images (all fake);
- generator adversarial (eq. 5): least squares ``E[(D(G(p)) - 1)^2]`` (``loss.adversarial: lsgan``).
The weights (w_adv 300, w_con 1.5, w_gra 3, w_col 10, eq. 1) are config keys ``loss.*_weight``
applied by the task. All "E[...]" and norms are means over every element, as the official code's
``reduce_mean``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anime_core.losses import AdversarialLoss, LSGANLoss, Pred

#: ITU-R BT.601 RGB -> YUV (rows Y, U, V), the matrix of TensorFlow's ``tf.image.rgb_to_yuv``
YUV_FROM_RGB = torch.tensor([
    [0.299, 0.587, 0.114],
    [-0.14714119, -0.28886916, 0.43601035],
    [0.61497538, -0.51496512, -0.10001026],
])
#: BT.601 luma weights, used for the grayscale copies (as OpenCV's RGB2GRAY)
LUMA = (0.299, 0.587, 0.114)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> its BT.601 luma repeated on 3 channels (any value range; idempotent)."""
    w = x.new_tensor(LUMA).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True).expand_as(x)


def rgb_to_yuv(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [-1, 1] -> YUV of the [0, 1] image (BT.601)."""
    rgb = (x.float() + 1) / 2
    return torch.einsum("ij,njhw->nihw", YUV_FROM_RGB.to(rgb.device), rgb)


def gram(feat: torch.Tensor) -> torch.Tensor:
    """Gram matrix (N, C, C) of features (N, C, H, W), normalised by C*H*W."""
    n, c, h, w = feat.shape
    f = feat.float().reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def content_loss(photo_feat: torch.Tensor, fake_feat: torch.Tensor) -> torch.Tensor:
    """Eq. 2 on precomputed features: mean |VGG(p) - VGG(G(p))|."""
    return F.l1_loss(fake_feat.float(), photo_feat.float())


def style_loss(fake_feat: torch.Tensor, gray_feat: torch.Tensor) -> torch.Tensor:
    """Eq. 3 on precomputed features: mean |Gram(VGG(G(p))) - Gram(VGG(x))|."""
    return F.l1_loss(gram(fake_feat), gram(gray_feat))


def color_loss(photo: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Eq. 4: L1 on Y plus Huber (delta 1) on U and V between G(p) and p (images in [-1, 1])."""
    p, f = rgb_to_yuv(photo), rgb_to_yuv(fake)
    return (F.l1_loss(f[:, 0], p[:, 0]) + F.huber_loss(f[:, 1], p[:, 1], delta=1.0)
            + F.huber_loss(f[:, 2], p[:, 2], delta=1.0))


def discriminator_loss(
    real: Pred, fake: Pred, gray: Pred, smooth: Pred, edge_weight: float = 0.1, gray_weight: float = 1.0,
    adv: AdversarialLoss | None = None,
) -> torch.Tensor:
    """Eq. 6 without the outer w_adv: E(D(a)-1)^2 + E D(G(p))^2 + E D(x)^2 + 0.1 E D(y)^2 with ``adv``
    (least squares by default, as the paper).

    ``gray_weight=0`` drops the grayscale adversarial term (the ablation "A" of section 4.2, Fig. 5).
    """
    adv = adv if adv is not None else LSGANLoss()
    loss = adv.d_loss(real, fake) + edge_weight * adv(smooth, False)
    return loss + gray_weight * adv(gray, False) if gray_weight else loss


# --------------------------------------------------------------------------------------------
# reusable loss modules (registered as LossSpecs)


def _vgg(layer: str, pretrained: bool) -> nn.Module:
    from anime_core.backbones import VGG19Features

    return VGG19Features((layer,), pretrained=pretrained)


class _Features(nn.Module):
    """Wraps a feature extractor returning a list (VGG19Features) or a tensor (e.g. a test stub).

    Two losses may share one extractor (``extractor=other.extractor``); a training step then runs
    VGG once per image and gives the features to each loss's ``from_features``.
    """

    def __init__(self, layer: str, pretrained: bool, extractor: nn.Module | None) -> None:
        super().__init__()
        self.extractor = extractor if extractor is not None else _vgg(layer, pretrained)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.extractor(x)
        return out[0] if isinstance(out, (list, tuple)) else out


class VGGContentLoss(_Features):
    """``vgg_content``: eq. 2, ``forward(photo, fake)`` on images in [-1, 1]."""

    def __init__(self, layer: str = "conv4_4", pretrained: bool = True, extractor: nn.Module | None = None) -> None:
        super().__init__(layer, pretrained, extractor)

    def forward(self, photo: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.features(photo)
        return self.from_features(target, self.features(fake))

    @staticmethod
    def from_features(photo_feat: torch.Tensor, fake_feat: torch.Tensor) -> torch.Tensor:
        return content_loss(photo_feat, fake_feat)


class GramGrayscaleLoss(_Features):
    """``gram_grayscale``: eq. 3, ``forward(fake, anime)``; the anime image is converted to grayscale."""

    def __init__(self, layer: str = "conv4_4", pretrained: bool = True, extractor: nn.Module | None = None) -> None:
        super().__init__(layer, pretrained, extractor)

    def forward(self, fake: torch.Tensor, anime: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.features(grayscale(anime))
        return self.from_features(self.features(fake), target)

    @staticmethod
    def from_features(fake_feat: torch.Tensor, gray_feat: torch.Tensor) -> torch.Tensor:
        """Eq. 3 on features of the generated and of the (already) grayscale anime images."""
        return style_loss(fake_feat, gray_feat)


class ColorYUVLoss(nn.Module):
    """``color_yuv``: eq. 4, ``forward(photo, fake)``."""

    def forward(self, photo: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return color_loss(photo, fake)


class AnimeGANDiscriminatorLoss(nn.Module):
    """``animegan_d``: eq. 6 (without w_adv), ``forward(real, fake, gray, smooth)`` on D's outputs.

    ``adversarial`` is the registered adversarial loss the run names (``loss.adversarial``); least
    squares when not given.
    """

    def __init__(self, edge_weight: float = 0.1, gray_weight: float = 1.0,
                 adversarial: AdversarialLoss | None = None) -> None:
        super().__init__()
        self.edge_weight, self.gray_weight = edge_weight, gray_weight
        self.adv = adversarial if adversarial is not None else LSGANLoss()

    def forward(self, real: Pred, fake: Pred, gray: Pred, smooth: Pred) -> torch.Tensor:
        return discriminator_loss(real, fake, gray, smooth, self.edge_weight, self.gray_weight, self.adv)
