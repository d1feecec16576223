"""Training (direct and through the core loop), export of both directions and ``--direction``."""

from __future__ import annotations

import csv

import pytest
import torch
from accelerate import Accelerator
from anime_plugin_cyclegan.generator import ResNetGenerator
from anime_plugin_cyclegan.pipeline import CycleGANPipeline
from anime_plugin_cyclegan.task import CycleGANTask
from helpers import make_image, write_images
from safetensors.torch import load_file
from torchvision.transforms.v2.functional import pil_to_tensor

import anime_core
from anime_core.config import resolve
from anime_core.errors import UsageError
from anime_core.losses import BCELoss, LSGANLoss
from anime_core.training.loop import train
from anime_core.training.task import StepContext
from anime_core.weights.files import save_native

TINY = ["generator.arch=resnet", "generator.width=8", "generator.n_blocks=1", "discriminator.width=8",
        "train.image_size=32"]


def tiny_task(registry, *overrides: str, steps_per_epoch: int = 100) -> CycleGANTask:
    cfg = resolve(registry.model("cyclegan"), None, [*TINY, *overrides])
    task = CycleGANTask(registry.model("cyclegan"), cfg, registry)
    task.build(steps_per_epoch)
    return task


def image_batch() -> dict[str, torch.Tensor]:
    def img(seed: int) -> torch.Tensor:
        return pil_to_tensor(make_image((32, 32), seed)).float() / 127.5 - 1

    return {"photo": torch.stack([img(0), img(1)]), "anime": torch.stack([img(100), img(101)])}


def test_cycle_loss_falls_in_a_short_cpu_run(registry):
    torch.manual_seed(0)
    task = tiny_task(registry)
    acc, batch = Accelerator(cpu=True), image_batch()
    d_before = [p.detach().clone() for p in task.nets["discriminator"].parameters()]
    cycles = []
    for step in range(25):
        logs = task.step(batch, StepContext(acc, step, 0, 100))
        cycles.append(float(logs["cycle"]))
    assert sum(cycles[-3:]) / 3 < 0.75 * sum(cycles[:3]) / 3, cycles
    # eq. 1 with loss.cycle_weight 10 and loss.identity_weight 5 (0.5 x lambda)
    total = float(logs["g_adv"]) + 10 * float(logs["cycle"]) + 5 * float(logs["identity"])
    assert float(logs["g_total"]) == pytest.approx(total, rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(d_before, task.nets["discriminator"].parameters()))
    assert len(task.pool_anime) == len(task.pool_photo) == 50  # 25 steps x 2 images, capped at 50
    assert {k: o.param_groups[0]["lr"] for k, o in task.optimizers.items()} == {"generator": 2e-4,
                                                                                  "discriminator": 2e-4}


def test_generator_step_leaves_discriminator_gradients_alone(registry):
    """G's loss flows through frozen discriminators: D's update sees only its own loss."""
    torch.manual_seed(0)
    task = tiny_task(registry, "loss.pool_size=0", "optim.lr_g=0.0", "optim.lr_d=0.0")
    acc, batch = Accelerator(cpu=True), image_batch()
    captured = {}
    opt = task.optimizers["discriminator"]
    real_step = opt.step

    def spy(*a, **k):
        captured["grads"] = [p.grad.clone() for p in task.nets["discriminator"].parameters()]
        return real_step(*a, **k)

    opt.step = spy
    torch.manual_seed(1)
    task.step(batch, StepContext(acc, 0, 0, 100))
    # recompute D_Y's own loss on the same fakes and compare gradients
    g, d = task.nets["generator"], task.nets["discriminator"]
    d.zero_grad()
    with torch.no_grad():
        fake = g(batch["photo"])
    (0.5 * task.adv.d_loss(d(batch["anime"]), d(fake))).backward()
    for got, want in zip(captured["grads"], (p.grad for p in d.parameters())):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_bce_option_uses_the_log_likelihood_loss(registry):
    task = tiny_task(registry, "loss.adversarial=bce", "loss.identity_weight=0")
    assert isinstance(task.adv, BCELoss) and isinstance(tiny_task(registry).adv, LSGANLoss)
    logs = task.step(image_batch(), StepContext(Accelerator(cpu=True), 0, 0, 100))
    assert "identity" not in logs and all(torch.isfinite(torch.as_tensor(v)) for v in logs.values())


@pytest.fixture
def folders(tmp_path):
    write_images(tmp_path / "photo", 4, (40, 36), seed=1)
    write_images(tmp_path / "anime", 4, (36, 44), seed=2)
    return [f"data.photo={tmp_path / 'photo'}", f"data.anime={tmp_path / 'anime'}", "data.num_workers=0",
            "train.batch_size=2", "train.device=cpu", "train.log_every=1", "train.sample_every=0",
            "generator.width=4", "discriminator.width=4", "generator.arch=resnet", "generator.n_blocks=1",
            "train.image_size=32"]


def test_end_to_end_loop_exports_both_directions_and_resumes_exactly(registry, folders, tmp_path):
    # constant rates: a run planned for 2 steps and resumed to 4 decays differently from one planned for 4
    folders = [*folders, "schedule.decay=none"]
    straight = train("cyclegan", overrides=[*folders, "train.max_steps=4", f"output_dir={tmp_path / 'a'}"],
                     progress=False)
    train("cyclegan", overrides=[*folders, "train.max_steps=2", f"output_dir={tmp_path / 'b'}"], progress=False)
    resumed = train("cyclegan", overrides=["train.max_steps=4"], resume=tmp_path / "b", progress=False)
    a, b = load_file(straight / "generator.safetensors"), load_file(resumed / "generator.safetensors")
    assert {k.split(".")[0] for k in a} == {"generator", "generator_inverse"}
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # pools restored exactly
    with (straight / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {"cycle", "identity", "d_anime", "d_photo", "lr_generator"} <= set(rows[0])

    weights = straight / "generator.safetensors"
    for direction, part in (("photo2anime", "generator"), ("anime2photo", "generator_inverse")):
        pipe = anime_core.load("cyclegan", weights=weights, device="cpu", direction=direction)
        assert isinstance(pipe, CycleGANPipeline) and pipe.options["direction"] == direction
        state = pipe.generator.state_dict()
        assert all(torch.equal(state[k], a[f"{part}.{k}"]) for k in state)
        out = pipe(make_image((30, 26), 5))  # not a multiple of the stride: padded and cropped back
        assert out.size == (30, 26)
    g, f = (anime_core.load("cyclegan", weights=weights, device="cpu", direction=d).generator
            for d in ("photo2anime", "anime2photo"))
    assert not torch.equal(g.decoder[-2].weight, f.decoder[-2].weight)


def test_direction_errors(registry, tmp_path):
    path = save_native(tmp_path / "g.safetensors", {"generator": ResNetGenerator(width=4, n_blocks=1)}, "cyclegan",
                       {"arch": "resnet", "width": 4, "n_blocks": 1})
    assert anime_core.load("cyclegan", weights=path, device="cpu").options["direction"] == "photo2anime"
    with pytest.raises(UsageError, match="no 'generator_inverse' part"):
        anime_core.load("cyclegan", weights=path, device="cpu", direction="anime2photo")
    with pytest.raises(UsageError, match="unknown direction"):
        anime_core.load("cyclegan", weights=path, device="cpu", direction="sideways")
    opt = registry.model("cyclegan").run_options[0]
    assert opt.name == "direction" and opt.default == "photo2anime"


def test_cli_run_direction_picks_the_inverse_generator(registry, tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from anime_core.cli import cli

    torch.manual_seed(0)
    opts = {"arch": "resnet", "width": 4, "n_blocks": 1}
    nets = {part: ResNetGenerator(width=4, n_blocks=1) for part in ("generator", "generator_inverse")}
    weights = save_native(tmp_path / "cg.safetensors", nets, "cyclegan", opts)
    src = tmp_path / "in.png"
    make_image((28, 20), 7).save(src)
    outs = {}
    for direction in ("photo2anime", "anime2photo"):
        out = tmp_path / f"{direction}.png"
        res = CliRunner().invoke(cli, ["run", "cyclegan", "--weights", str(weights), "--direction", direction,
                                       "--device", "cpu", str(src), "-o", str(out)])
        assert res.exit_code == 0, res.output
        outs[direction] = Image.open(out).convert("RGB")
        expected = anime_core.load("cyclegan", weights=weights, device="cpu", direction=direction)(Image.open(src))
        assert outs[direction].tobytes() == expected.tobytes()
    assert outs["photo2anime"].tobytes() != outs["anime2photo"].tobytes()
