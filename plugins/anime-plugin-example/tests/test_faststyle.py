"""faststyle: the transformation network, the losses and that training lowers the loss."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from anime_example_plugin import plugin
from anime_example_plugin.generator import TransformNet
from anime_example_plugin.losses import GramStyleLoss, TotalVariationLoss, gram
from PIL import Image

import anime_core
from anime_core.config import resolve
from anime_core.errors import ConfigError, UsageError
from anime_core.registry import load_registry
from anime_core.training import StepContext


def test_transformnet_has_the_papers_parameter_count_and_keeps_sizes():
    # supplementary Table 1 with batch norm: 1,679,235 weights (norm affine params included)
    assert sum(p.numel() for p in TransformNet(norm="batch").parameters()) == 1_679_235
    net = TransformNet(base_channels=8, num_res_blocks=1).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 3, 20, 28) * 2 - 1)
    assert y.shape == (1, 3, 20, 28) and y.abs().max() <= 1
    with pytest.raises(ValueError, match="norm"):
        TransformNet(norm="group")


def test_nearest_upsampling_variant_keeps_sizes():
    net = TransformNet(base_channels=4, num_res_blocks=1, upsample="nearest").eval()
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 3, 16, 16)


def test_gram_and_style_loss_by_hand():
    f = torch.tensor([[1.0, 2.0], [0.0, 1.0]]).reshape(1, 2, 1, 2)  # C=2, H=1, W=2
    expected = torch.tensor([[5.0, 2.0], [2.0, 1.0]]) / 4
    assert torch.allclose(gram(f)[0], expected)
    target = torch.zeros(1, 2, 2)
    assert GramStyleLoss()(f, target).item() == pytest.approx(((5 / 4) ** 2 + 2 * (2 / 4) ** 2 + (1 / 4) ** 2) / 4)
    assert GramStyleLoss()(f, f).item() == 0


def test_total_variation_by_hand():
    img = torch.tensor([[0.0, 1.0], [0.0, 3.0]]).reshape(1, 1, 2, 2)
    # vertical diffs (0, 2): mean 2; horizontal diffs (1, 3): mean 5
    assert TotalVariationLoss()(img).item() == pytest.approx(2 + 5)


def test_build_takes_the_generator_options_and_rejects_bad_ones():
    net = anime_core.build("faststyle", "generator", base_channels=4, num_res_blocks=1, upsample="nearest")
    assert net.encoder[0][0].out_channels == 4 and len(net.residual) == 1
    with pytest.raises(UsageError, match="generator.norm must be one of instance, batch, not 'group'") as info:
        anime_core.build("faststyle", "generator", norm="group")
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.style_weight=-1", "'loss.style_weight' must be at least 0.0, not -1.0"),
        ("optim.betas=[0.9]", "'optim.betas' expects a list of 2 values"),
        ("loss.vgg_pretrained=maybe", "'loss.vgg_pretrained' expects true or false"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        resolve(anime_core.get_registry().model("faststyle"), overrides=[override])


def _task(tmp_path, style: str | None):
    reg = load_registry(extra=[("example", plugin)], entry_points=False, strict=True)
    spec = reg.model("faststyle")
    overrides = [
        "generator.base_channels=8",
        "generator.num_res_blocks=1",
        "loss.vgg_pretrained=false",
        "loss.style_size=32",
        "loss.style_layers=[conv1_2_relu, conv2_2_relu]",
        "loss.style_weight=1000",
    ]
    if style:
        overrides.append(f"data.style={style}")
    task = spec.task_class()(spec, resolve(spec, overrides=overrides), reg)
    task.build(1)
    return task


def test_training_lowers_the_perceptual_loss(tmp_path):
    torch.manual_seed(0)
    style = tmp_path / "style.png"
    stripes = torch.zeros(32, 32, 3, dtype=torch.uint8)
    stripes[::4] = torch.tensor([255, 40, 0], dtype=torch.uint8)
    Image.fromarray(stripes.numpy()).save(style)
    task = _task(tmp_path, str(style))
    ctx = StepContext(Accelerator(cpu=True), 0, 0, 1)
    photos = {"image": torch.rand(2, 3, 32, 32) * 2 - 1}
    first = task.step(photos, ctx)["total"].item()
    for i in range(1, 25):
        ctx.step = i
        last = task.step(photos, ctx)["total"].item()
    assert last < 0.7 * first


def test_missing_style_image_is_a_config_error(tmp_path):
    task = _task(tmp_path, None)  # building needs no data
    ctx = StepContext(Accelerator(cpu=True), 0, 0, 1)
    with pytest.raises(ConfigError, match="data.style"):
        task.step({"image": torch.zeros(1, 3, 16, 16)}, ctx)


def test_anime_train_faststyle_exports_runnable_weights(tmp_path):
    """The core loop trains the model end to end and the exported weights run through `anime run`."""
    from anime_core.registry import set_registry
    from anime_core.training.loop import train

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.fromarray((torch.rand(40, 40, 3) * 255).to(torch.uint8).numpy()).save(photos / f"{i}.png")
    style = photos / "0.png"
    reg = load_registry(extra=[("example", plugin)], entry_points=False, strict=True)
    set_registry(reg)
    try:
        run = train(
            "faststyle",
            config="small",
            overrides=[
                f"data.photo={photos}",
                f"data.style={style}",
                "data.num_workers=0",
                f"output_dir={tmp_path / 'run'}",
                "train.image_size=32",
                "train.batch_size=2",
                "train.max_steps=2",
                "generator.base_channels=4",
                "generator.num_res_blocks=1",
                "loss.vgg_pretrained=false",
                "loss.style_size=32",
            ],
            registry=reg,
            progress=False,
        )
        import anime_core

        pipe = anime_core.load("faststyle", weights=run / "generator.safetensors", device="cpu")
        assert pipe(Image.new("RGB", (36, 20))).size == (36, 20)  # padded to the stride 4 and cropped back
    finally:
        set_registry(None)
