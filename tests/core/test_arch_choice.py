"""Issue 13, architecture choice for foreign files: ``variant``/``arch`` reach the generator through
``anime_core.load`` and ``anime run --variant/--arch``; other keywords and contradictions are usage errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import make_image
from PIL import Image

import anime_core
from anime_core.api import Source, architecture_option, merge_chosen
from anime_core.cli import main
from anime_core.errors import UsageError, WeightsUnavailable
from anime_core.weights.files import save_native

AE_SMALL = {"widths": [4, 8], "encoding_filters": 8, "latent_channels": 4}


def _plain(path, net: torch.nn.Module):
    """A bare ``torch.save(net.state_dict())``: native key names, no metadata, so no converter decides it."""
    torch.save(net.state_dict(), path)
    return path


def _run(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.eval()(x)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float reordering (the pipeline may hold the net in channels-last memory, other conv kernels)."""
    return torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def _cli(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return int(exc.value.code or 0), capsys.readouterr().err


def test_the_architecture_option_comes_from_what_plugins_register(registry):
    arch = {name: architecture_option(spec, registry) for name, spec in registry.models.items()}
    animegan = arch["animegan"]
    assert (animegan.name, animegan.choices, animegan.default) == ("variant", ("v1", "v2"), "v1")
    assert (arch["cyclegan"].name, set(arch["cyclegan"].choices)) == ("arch", {"unet", "resnet", "pix2pix-unet"})
    assert (arch["ae"].name, set(arch["ae"].choices)) == ("variant", {"lab", "rgb", "skip", "vae"})
    assert arch["dcgan"] is None and arch["pixelsake-sr"] is None  # one network: nothing to choose


def test_a_plain_state_dict_runs_with_the_variant_it_needs(registry, tmp_path):
    torch.manual_seed(0)
    native = anime_core.build("ae", variant="rgb", **AE_SMALL)
    path = _plain(tmp_path / "rgb.pt", native)
    with pytest.raises(WeightsUnavailable, match=r"variant=rgb"):  # the default (lab) does not fit; the error says what
        anime_core.load("ae", weights=path, device="cpu", **AE_SMALL)
    pipe = anime_core.load("ae", weights=path, device="cpu", variant="rgb", **AE_SMALL)
    x = torch.rand(1, 3, 16, 24) * 2 - 1
    assert _same(_run(pipe.generator, x), _run(native, x))
    # and the images equal those of the same network saved natively with its variant recorded
    recorded = save_native(tmp_path / "rgb.safetensors", {"generator": native}, "ae", {"variant": "rgb", **AE_SMALL})
    img = make_image((24, 16), 3)
    same = anime_core.load("ae", weights=recorded, device="cpu")(img)
    assert np.array_equal(np.asarray(pipe(img)), np.asarray(same))


def test_arch_and_its_sizes_reach_the_cyclegan_generator(registry, tmp_path):
    torch.manual_seed(1)
    native = anime_core.build("cyclegan", arch="resnet", width=8, n_blocks=2)
    path = _plain(tmp_path / "G.pt", native)
    pipe = anime_core.load("cyclegan", weights=path, device="cpu", arch="resnet", width=8, n_blocks=2)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert _same(_run(pipe.generator, x), _run(native, x))


def test_a_keyword_settles_what_a_converter_left_open(registry, tmp_path):
    """The AnimeGANv2 PyTorch layout records only variant=v2; ``upsample`` picks the computation."""
    torch.manual_seed(2)
    native = anime_core.build("animegan", variant="v2", upsample="half_pixel")
    path = tmp_path / "paprika-like.pt"
    torch.save(native.state_dict(), path)
    x = torch.rand(1, 3, 20, 28) * 2 - 1
    chosen = anime_core.load("animegan", weights=path, device="cpu", backend="torch", upsample="half_pixel")
    default = anime_core.load("animegan", weights=path, device="cpu", backend="torch")  # torch: its layers are read
    assert chosen.generator.upsample == "half_pixel"
    assert _same(_run(chosen.generator, x), _run(native, x))
    assert not _same(_run(default.generator, x), _run(native, x))  # the keyword did change the network


def test_a_keyword_that_contradicts_the_weights_names_both_values(registry, tmp_path):
    torch.manual_seed(3)
    v2 = tmp_path / "v2.pt"
    torch.save(anime_core.build("animegan", variant="v2").state_dict(), v2)
    read = r"variant='v1'.*v2\.pt, read as a 'animegan\.[\w-]+' checkpoint, needs variant='v2'"  # a converter read v2
    with pytest.raises(UsageError, match=read):
        anime_core.load("animegan", weights=v2, device="cpu", variant="v1")
    lab = save_native(tmp_path / "lab.safetensors", {"generator": anime_core.build("ae", **AE_SMALL)}, "ae",
                      {"variant": "lab", **AE_SMALL})
    with pytest.raises(UsageError, match=r"variant='rgb'.*lab\.safetensors records variant='lab'"):
        anime_core.load("ae", weights=lab, device="cpu", variant="rgb")
    style = Source(generator_options={"variant": "v2"}, label="animegan:paprika", style=True)
    with pytest.raises(UsageError, match=r"variant='v1'.*style animegan:paprika is variant='v2'"):
        merge_chosen(registry.model("animegan"), style, {"variant": "v1"})
    assert merge_chosen(registry.model("animegan"), style, {"variant": "v2", "upsample": "half_pixel"}) == {
        "variant": "v2", "upsample": "half_pixel"}


def test_keywords_neither_part_takes_are_usage_errors(registry, tmp_path):
    path = tmp_path / "v2.pt"
    torch.save(anime_core.build("animegan", variant="v2").state_dict(), path)
    with pytest.raises(UsageError, match=r"animegan's generator takes no 'arch' \(it takes variant, resize"):
        anime_core.load("animegan", weights=path, device="cpu", arch="unet")
    with pytest.raises(UsageError, match=r"did you mean 'variant'"):
        anime_core.load("animegan", weights=path, device="cpu", varient="v2")
    with pytest.raises(UsageError, match=r"no variant 'v3'; use one of v1, v2"):
        anime_core.load("animegan", weights=path, device="cpu", variant="v3")
    with pytest.raises(UsageError, match=r"resize='tf1_legacy' does not build animegan's generator.*variant v1"):
        anime_core.load("animegan", weights=path, device="cpu", resize="tf1_legacy")  # a v1 option on a v2 file
    with pytest.raises(UsageError, match=r"takes no 'class_name'.*its pipeline takes direction"):
        anime_core.load("cyclegan", weights=path, device="cpu", class_name="green")  # dcgan's option, not cyclegan's
    graph = tmp_path / "g.onnx"
    graph.write_bytes(b"not read: the keyword is refused first")
    with pytest.raises(UsageError, match=r"ONNX graph.*leave out variant"):
        anime_core.load("animegan", weights=graph, variant="v2")


def test_anime_run_variant_and_arch(registry, tmp_path, capsys):
    torch.manual_seed(4)
    native = anime_core.build("ae", variant="rgb")
    path = _plain(tmp_path / "rgb.pt", native)
    src = tmp_path / "in.png"
    make_image((24, 16), 7).save(src)
    common = ["--device", "cpu", "-q", src]

    code, err = _cli(capsys, "run", "ae", "--weights", path, *common, "-o", tmp_path / "no.png")
    assert code == 3 and "--variant rgb" in err
    code, err = _cli(capsys, "run", "ae", "--weights", path, "--variant", "rgb", *common, "-o", tmp_path / "out.png")
    assert code == 0, err
    expected = anime_core.load("ae", weights=path, device="cpu", variant="rgb")(Image.open(src))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.asarray(expected))

    recorded = save_native(tmp_path / "rgb.safetensors", {"generator": native}, "ae", {"variant": "rgb"})
    code, err = _cli(capsys, "run", "ae", "--weights", recorded, "--variant", "lab", *common, "-o", tmp_path / "x.png")
    assert code == 2 and "variant='lab'" in err and "variant='rgb'" in err and len(err.strip().splitlines()) == 1
    code, err = _cli(capsys, "run", "ae", "--weights", recorded, "--arch", "unet", *common)
    assert code == 2 and "--arch" in err
    assert not (tmp_path / "x.png").exists()


def test_run_help_offers_the_option_only_where_there_is_a_choice(registry, capsys):
    def help_of(model: str) -> str:
        with pytest.raises(SystemExit):
            main(["run", model, "--help"])
        return capsys.readouterr().out

    assert "--arch [unet|resnet|pix2pix-unet]" in help_of("cyclegan")
    assert "--variant [v1|v2]" in help_of("animegan")
    dcgan = help_of("dcgan")
    assert "--variant" not in dcgan and "--arch" not in dcgan
