"""The core's own pretrained files (perceptual-loss and metric backbones), pinned by full sha256 and size.

Plain data, no torch: ``anime weights list`` reads it without loading any network code. The
hosts publish only the first 8 hex digits of each sha256, in the file name (torch.hub's
``check_hash`` convention); a 32-bit prefix is far too weak to stop a substituted file, so
the full digests below pin them. Each was found published, identically, in several
independent projects that pin the same URLs, and its first 8 digits match the file name.
"""

from __future__ import annotations

from anime_core.specs import WeightsSource

VGG19_KEY = "backbone:vgg19"
INCEPTION_KEY = "backbone:inception"
ALEXNET_KEY = "backbone:alexnet"

#: torchvision's VGG19 ImageNet weights (timm's vgg19.tv_in1k is the same file; keys features.N.*)
VGG19_SOURCE = WeightsSource(
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    sha256="dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
    size=574_673_361,
    layout="torchvision",
)

#: torch-fidelity's conversion of the TF Inception graph used by the original FID/IS code
#: (byte-identical to pytorch-fid's pt_inception-2015-12-05-6726825d.pth)
INCEPTION_SOURCE = WeightsSource(
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
    size=95_628_359,
    layout="torch-fidelity",
)

#: torchvision's AlexNet ImageNet weights, the backbone LPIPS was calibrated with
ALEXNET_SOURCE = WeightsSource(
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
    size=244_408_911,
    layout="torchvision",
)


RETINAFACE_KEY = "detector:retinaface"

#: RetinaFace MobileNet-0.25 (biubug6/Pytorch_Retinaface, MIT) exported to ONNX, as AnimeGANv3's portrait tool
#: publishes it; pinned by the full sha256 and git blob SHA-1 of the published file (../shared/models/README.md)
RETINAFACE_SOURCE = WeightsSource(
    url="https://github.com/TachibanaYoshino/AnimeGANv3_Portrait_Inference/raw/main/core/model_core/"
        "detection_mobilenet0.25_Final.onnx",
    sha256="a0d9d990afa342c28b9b75a5927039999ef75451191b246d9333878643cf201b",
    git_sha1="918b8813a573a7acf9145f7f101979c3c1bf00f1",
    size=1_719_139,
    layout="onnx",
)


def known_weights() -> dict[str, WeightsSource]:
    """Backbone and metric weights that ``anime weights`` manages besides the plugins' styles."""
    return {VGG19_KEY: VGG19_SOURCE, INCEPTION_KEY: INCEPTION_SOURCE, ALEXNET_KEY: ALEXNET_SOURCE}
