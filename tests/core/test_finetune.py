"""Fine-tuning (issue 16): ``--init STYLE|FILE`` starts a new run from pretrained weights, ``train.freeze``."""

from __future__ import annotations

import pytest
import torch
import yaml
from helpers import write_images

import anime_core
from anime_core import config as cfglib
from anime_core.errors import ConfigError, UsageError, WeightsUnavailable
from anime_core.training.init import apply_start, start_weights
from anime_core.weights.files import save_native

CYCLE = ["generator.arch=resnet", "generator.width=4", "generator.n_blocks=1", "discriminator.width=4",
         "train.image_size=32"]


def _task(registry, model, overrides, init=None, config=None):
    spec = registry.model(model)
    cfg = cfglib.resolve(spec, config, overrides)
    start = start_weights(spec, cfg, registry, init, config, overrides)
    task = spec.task_class()(spec, cfg, registry)
    task.build(steps_per_epoch=4)
    return task, apply_start(task, start), cfg


@pytest.fixture
def cyclegan_file(registry, tmp_path):
    """A native CycleGAN export (both directions), as a finished run writes it."""
    torch.manual_seed(1)
    g, f = (anime_core.build("cyclegan", arch="resnet", width=4, n_blocks=1) for _ in range(2))
    path = tmp_path / "pretrained.safetensors"
    save_native(path, {"generator": g, "generator_inverse": f}, "cyclegan", {"arch": "resnet", "width": 4,
                                                                           "n_blocks": 1})
    return path, g, f


def test_every_part_the_file_holds_starts_the_run_and_the_others_stay_fresh(registry, cyclegan_file):
    path, g, f = cyclegan_file
    task, notes, cfg = _task(registry, "cyclegan", CYCLE, init=str(path))
    for name, source in (("generator", g), ("generator_inverse", f)):
        state = task.nets[name].state_dict()
        assert all(torch.equal(state[k], v) for k, v in source.state_dict().items())
    assert all(not opt.state for opt in task.optimizers.values())  # the optimizers start fresh
    assert cfg.init.source == str(path) and len(cfg.init.sha256) == 64
    assert "discriminator, discriminator_inverse from random weights (the file has none)" in notes[-1]


def test_the_file_generator_options_are_adopted_and_said(registry, cyclegan_file, monkeypatch):
    path, *_ = cyclegan_file
    monkeypatch.chdir(path.parent)
    base = [o for o in CYCLE if not o.startswith(("generator.width", "generator.n_blocks"))]
    _, notes, cfg = _task(registry, "cyclegan", base, init=path.name)
    assert cfg.generator["width"] == 4 and cfg.generator["n_blocks"] == 1
    assert "takes the file's generator options" in notes[0] and "generator.width=4 (was 64)" in notes[0]
    assert cfg.init.source == str(path)  # absolute: a copied config.yaml works from any folder


def test_an_option_the_user_set_otherwise_is_an_error_and_a_misfit_is_named(registry, cyclegan_file, tmp_path):
    path, *_ = cyclegan_file
    spec = registry.model("cyclegan")
    overrides = [*CYCLE, "generator.width=8"]
    with pytest.raises(ConfigError, match=r"generator.width=8 conflicts with the weights of --init .* \(width=4\)"):
        start_weights(spec, cfglib.resolve(spec, None, overrides), registry, str(path), None, overrides)
    plain = tmp_path / "plain.pt"  # a bare state dict records no options: the run's options must fit it
    torch.save(anime_core.build("cyclegan", arch="resnet", width=4, n_blocks=2).state_dict(), plain)
    with pytest.raises(WeightsUnavailable, match=r"does not fit the generator of this run \(arch=resnet.*"
                                                 r"n_blocks=1.*unexpected"):
        start_weights(spec, cfglib.resolve(spec, None, CYCLE), registry, str(plain), None, CYCLE)


def test_a_foreign_file_goes_through_its_converter_and_animegan_skips_its_init_phase(registry, tmp_path):
    from anime_plugin_animegan.generator import GeneratorV2

    foreign = tmp_path / "face_paint.pt"  # the AnimeGANv2 PyTorch layout: a state dict saved with torch.save
    torch.save(GeneratorV2().state_dict(), foreign)
    spec = registry.model("animegan")
    cfg = cfglib.resolve(spec, None, [])
    start = start_weights(spec, cfg, registry, str(foreign))
    assert cfg.generator.variant == "v2" and cfg.train.init_epochs == 0
    assert any("train.init_epochs=0" in n and "set train.init_epochs=1" in n for n in start.notes)
    explicit = ["train.init_epochs=1"]  # chosen by the user: kept
    cfg = cfglib.resolve(spec, None, explicit)
    start_weights(spec, cfg, registry, str(foreign), None, explicit)
    assert cfg.train.init_epochs == 1


def test_cli_records_source_and_hash_and_a_changed_file_is_refused(registry, cyclegan_file, tmp_path, capsys):
    from anime_core.cli import main

    path, *_ = cyclegan_file
    write_images(tmp_path / "photo", 2, (36, 36), seed=1)
    write_images(tmp_path / "anime", 2, (36, 36), seed=2)
    data = [f"data.photo={tmp_path / 'photo'}", f"data.anime={tmp_path / 'anime'}", "data.num_workers=0",
            "train.batch_size=2", "train.device=cpu", "train.max_steps=1", "train.sample_every=0",
            "train.tensorboard=false", *CYCLE]
    with pytest.raises(SystemExit) as done:
        main(["train", "cyclegan", "--init", str(path), "-q", *data, f"output_dir={tmp_path / 'run'}"])
    out = capsys.readouterr()
    assert done.value.code == 0, out.err
    assert f"--init {path} (sha256 " in out.out
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["init"]["source"] == str(path)
    assert saved["init"]["sha256"] == __import__("hashlib").sha256(path.read_bytes()).hexdigest()

    path.write_bytes(path.read_bytes()[:-1] + b" ")  # the same name, other bytes: a copied config must notice
    with pytest.raises(SystemExit) as done:
        main(["train", "cyclegan", "--config", str(tmp_path / "run" / "config.yaml"), f"output_dir={tmp_path / 'b'}"])
    assert done.value.code == 3 and "the file changed" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()  # checked before any run folder was made


def test_bad_sources_and_init_with_resume_are_usage_errors(registry, tmp_path):
    spec = registry.model("animegan")
    with pytest.raises(UsageError, match=r"neither a weights file nor a style \(styles of 'animegan': "
                                          r"animegan:celeba_distill.*\); give a file path or MODEL:STYLE"):
        start_weights(spec, cfglib.resolve(spec), registry, "nope.pt")
    with pytest.raises(UsageError, match="is a style of 'cyclegan', not of 'animegan'"):
        start_weights(spec, cfglib.resolve(spec), registry, "cyclegan:any")
    with pytest.raises(UsageError, match="give one of them"):
        start_weights(spec, cfglib.resolve(spec), registry, "x.pt", resuming=True)
    with pytest.raises(WeightsUnavailable, match="ANIME_OFFLINE"):  # a style not in the cache, offline
        start_weights(spec, cfglib.resolve(spec), registry, "animegan:paprika")


def _grads_step(task, batch):
    from accelerate import Accelerator

    from anime_core.training.task import StepContext

    return task.step(batch, StepContext(Accelerator(cpu=True), 0, 0, 4))


def test_freeze_encoder_keeps_the_ae_encoder_fixed_and_out_of_the_optimizer(registry):
    torch.manual_seed(0)
    task, notes, _ = _task(registry, "ae", ["generator.widths=[4,8]", "generator.encoding_filters=8",
                                            "train.image_size=16", "train.freeze=encoder"])
    gen = task.nets["generator"]
    frozen = {id(p) for m in (gen.encoder, gen.encoding) for p in m.parameters()}
    optimized = {id(p) for g in task.optimizers["generator"].param_groups for p in g["params"]}
    assert frozen and not frozen & optimized and optimized
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    batch = {"photo": torch.rand(2, 3, 16, 16) * 2 - 1, "anime": torch.rand(2, 3, 16, 16) * 2 - 1}
    _grads_step(task, batch)
    after = gen.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("encoder.", "encoding.")))
    assert not torch.equal(before["head.0.weight"], after["head.0.weight"])
    assert notes[-1].startswith("train.freeze=encoder: ") and "parameters fixed" in notes[-1]


@pytest.mark.parametrize("arch", ["unet", "resnet"])
def test_freeze_encoder_of_both_cyclegan_generators(registry, arch):
    extra = ["generator.attention=down", "generator.attention_resolutions=[32]"] if arch == "unet" else []
    base = [o for o in CYCLE if arch == "resnet" or o != "generator.n_blocks=1"]  # a resnet option: not for unet
    task, _, _ = _task(registry, "cyclegan", [*base, f"generator.arch={arch}", *extra, "train.freeze=encoder",
                                               "train.image_size=256" if arch == "unet" else "train.image_size=32"])
    encoders = task.freezable()["encoder"]
    assert len(encoders) == (4 if arch == "unet" else 2)  # down + its attention, per generator
    params = [p for m in encoders for p in m.parameters()]
    assert params and not any(p.requires_grad for p in params)
    assert all(p.requires_grad for p in task.nets["discriminator"].parameters())


def test_freeze_names_what_a_model_offers(registry):
    with pytest.raises(ConfigError, match=r"train.freeze=decoder: model 'ae' cannot freeze 'decoder'; "
                                          r"use one of encoder or none"):
        _task(registry, "ae", ["generator.widths=[4]", "generator.encoding_filters=4", "train.freeze=decoder"])
    with pytest.raises(ConfigError, match=r"cannot freeze 'encoder'; use none \(it has no freezable parts\)"):
        _task(registry, "animegan", ["train.freeze=encoder", "discriminator.width=4", "loss.vgg_pretrained=false"])
