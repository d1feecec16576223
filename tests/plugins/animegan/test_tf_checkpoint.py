"""The official AnimeGAN TensorFlow 1 checkpoints run through ``anime run`` as the official network computes.

The reference below is an independent re-implementation of the authors' ``net/generator.py`` and
``tools/ops.py`` (TachibanaYoshino/AnimeGAN) in NHWC torch maths that follows each TF op: explicit
reflect padding, VALID convolutions with HWIO kernels, ``tf.contrib``'s separable convolution
(depthwise then pointwise), instance norm with the epsilon each call site uses (1e-5 from
``ops.instance_norm``, 1e-6 from ``tf.contrib``'s default in the separable convolutions), and TF1's
legacy bilinear ``resize_images``. It creates its variables under the names ``tf.contrib`` gives
them, with random values; the checkpoint is written in the real on-disk format.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import tf1_writer
import torch
from anime_plugin_animegan.converters_tf import LAYOUT_V1_TF, LAYOUT_V2_TF, V1_TF_OPTIONS
from anime_plugin_animegan.generator import GeneratorV2
from PIL import Image

from anime_core.errors import WeightsUnavailable
from anime_core.registry import get_registry
from anime_core.weights import load_weights, tf1

#: sha256 of "name [shape]" lines, sorted, of the published Hayao-60.ckpt.index (git blob 36907806...)
PUBLISHED_VARIABLES = "81991cb41d01544e06f6eb2fc952dc641564d3a0ede7a211a6978227defd134e"


class OfficialV1:
    """``G_net`` of the official AnimeGAN code in NHWC; variables are created on first use."""

    def __init__(self, seed: int = 0) -> None:
        self.vars: dict[str, torch.Tensor] = {}
        self.gen = torch.Generator().manual_seed(seed)
        self.used: dict[str, int] = {}

    # -- variables named as tf.contrib names them: Conv, Conv_1, ... within a scope --------------
    def unique(self, scope: str, base: str) -> str:
        n = self.used.get(f"{scope}/{base}", 0)
        self.used[f"{scope}/{base}"] = n + 1
        return f"{scope}/{base}" + (f"_{n}" if n else "")

    def var(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if name not in self.vars:
            r = torch.randn(shape, generator=self.gen)
            if name.endswith("gamma"):
                r = 1 + 0.2 * r
            elif name.endswith("beta"):
                r = 0.2 * r
            else:
                r = r / (9 if name.endswith(("/w", "depthwise_weights")) else np.prod(shape[:-1])) ** 0.5
            self.vars[name] = r
        return self.vars[name]

    # -- TF ops, NHWC --------------------------------------------------------------------------
    @staticmethod
    def pad(x, top, bottom, left, right):  # tf.pad(mode="REFLECT")
        h, w = x.shape[1], x.shape[2]
        rows = list(range(top, 0, -1)) + list(range(h)) + list(range(h - 2, h - 2 - bottom, -1))
        cols = list(range(left, 0, -1)) + list(range(w)) + list(range(w - 2, w - 2 - right, -1))
        return x[:, rows][:, :, cols]

    @staticmethod
    def conv(x, w, stride=1):  # VALID, HWIO kernel
        k = w.shape[0]
        patches = x.unfold(1, k, stride).unfold(2, k, stride)  # N, H', W', C, kh, kw
        return torch.einsum("nhwcij,ijco->nhwo", patches, w)

    @staticmethod
    def depthwise(x, w, stride=1):  # VALID, kernel (kh, kw, C, 1)
        patches = x.unfold(1, 3, stride).unfold(2, 3, stride)
        return torch.einsum("nhwcij,ijc->nhwc", patches, w[..., 0])

    def norm(self, x, scope, eps):
        mean = x.mean(dim=(1, 2), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(1, 2), keepdim=True)
        c = x.shape[-1]
        return (x - mean) / torch.sqrt(var + eps) * self.var(f"{scope}/gamma", (c,)) + self.var(f"{scope}/beta", (c,))

    @staticmethod
    def lrelu(x):
        return torch.where(x > 0, x, 0.2 * x)

    @staticmethod
    def resize(x, h, w):  # TF1 resize_images: bilinear, align_corners=False, half_pixel_centers=False
        def matrix(n_in, n_out):
            m = torch.zeros(n_out, n_in)
            for i in range(n_out):
                src = i * n_in / n_out
                lo = int(np.floor(src))
                hi = min(lo + 1, n_in - 1)
                m[i, lo] += 1 - (src - lo)
                m[i, hi] += src - lo
            return m

        x = torch.einsum("oh,nhwc->nowc", matrix(x.shape[1], h), x)
        return torch.einsum("ow,nhwc->nhoc", matrix(x.shape[2], w), x)

    # -- the layers of net/generator.py ----------------------------------------------------------
    def conv_norm_lrelu(self, x, scope, filters, k=3):
        if k == 3:
            x = self.pad(x, 1, 1, 1, 1)
        x = self.conv(x, self.var(self.unique(scope, "Conv") + "/weights", (k, k, x.shape[-1], filters)))
        return self.lrelu(self.norm(x, self.unique(scope, "InstanceNorm"), 1e-5))

    def separable(self, x, scope, filters, stride=1):
        x = self.pad(x, 1, 1, 1, 1) if stride == 1 else self.pad(x, 0, 1, 0, 1)
        sc = self.unique(scope, "SeparableConv2d")
        c = x.shape[-1]
        x = self.depthwise(x, self.var(f"{sc}/depthwise_weights", (3, 3, c, 1)), stride)
        x = self.conv(x, self.var(f"{sc}/pointwise_weights", (1, 1, c, filters)))
        return self.lrelu(self.norm(x, f"{sc}/InstanceNorm", 1e-6))

    def irb(self, x, scope):
        name = scope.rsplit("/", 1)[-1]
        y = self.conv_norm_lrelu(x, scope, 512, k=1)
        y = self.depthwise(self.pad(y, 1, 1, 1, 1), self.var(f"{scope}/{name}/w", (3, 3, 512, 1)))
        y = self.lrelu(self.norm(y, f"{scope}/1", 1e-5))
        y = self.conv(y, self.var(self.unique(scope, "Conv") + "/weights", (1, 1, 512, 256)))
        return x + self.norm(y, f"{scope}/2", 1e-5)

    def __call__(self, x):
        g = "generator/G_MODEL"
        x = self.conv_norm_lrelu(x, f"{g}/b1", 64)
        x = self.conv_norm_lrelu(x, f"{g}/b1", 64)
        h, w = x.shape[1] // 2, x.shape[2] // 2
        x = self.separable(x, f"{g}/b1", 128, 2) + self.separable(self.resize(x, h, w), f"{g}/b1", 128)
        x = self.conv_norm_lrelu(x, f"{g}/b2", 128)
        x = self.separable(x, f"{g}/b2", 128)
        h, w = x.shape[1] // 2, x.shape[2] // 2
        x = self.separable(x, f"{g}/b2", 256, 2) + self.separable(self.resize(x, h, w), f"{g}/b2", 256)
        x = self.conv_norm_lrelu(x, f"{g}/m", 256)
        for k in range(1, 9):
            x = self.irb(x, f"{g}/m/r{k}")
        x = self.conv_norm_lrelu(x, f"{g}/m", 256)
        x = self.separable(self.resize(x, 2 * x.shape[1], 2 * x.shape[2]), f"{g}/u2", 128)
        x = self.separable(x, f"{g}/u2", 128)
        x = self.conv_norm_lrelu(x, f"{g}/u2", 128)
        x = self.separable(self.resize(x, 2 * x.shape[1], 2 * x.shape[2]), f"{g}/u1", 128)
        x = self.conv_norm_lrelu(x, f"{g}/u1", 64)
        x = self.conv_norm_lrelu(x, f"{g}/u1", 64)
        return torch.tanh(self.conv(x, self.var(self.unique(g, "Conv") + "/weights", (1, 1, 64, 3))))

    def run(self, x: torch.Tensor) -> torch.Tensor:
        self.used = {}
        with torch.no_grad():
            return self(x)


@pytest.fixture(scope="module")
def official():
    net = OfficialV1(seed=0)
    net.run(torch.zeros(1, 8, 8, 3))  # creates the variables
    return net


def test_the_reference_creates_exactly_the_published_variables(official):
    lines = "\n".join(f"{k} {list(v.shape)}" for k, v in sorted(official.vars.items()))
    assert hashlib.sha256(lines.encode()).hexdigest() == PUBLISHED_VARIABLES
    assert len(official.vars) == 129 and sum(v.numel() for v in official.vars.values()) == 3_956_096


def test_anime_run_with_a_tf_checkpoint_reproduces_the_official_network(official, tmp_path):
    from click.testing import CliRunner

    from anime_core.cli import cli

    tf1_writer.write_checkpoint(tmp_path / "Hayao-60.ckpt", {k: v.numpy() for k, v in official.vars.items()})
    rng = np.random.default_rng(0)
    src = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (44, 36, 3), dtype=np.uint8)).save(src)  # 44 -> 22 -> 11: odd sizes
    out = tmp_path / "out.png"
    res = CliRunner().invoke(cli, ["run", "animegan", "--weights", str(tmp_path / "Hayao-60.ckpt.index"), str(src),
                                   "-o", str(out), "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    x = torch.from_numpy(np.asarray(Image.open(src), dtype=np.float32))[None] / 127.5 - 1  # test.py's scaling
    want = ((official.run(x)[0] + 1) * 127.5).clamp(0, 255).numpy()
    got = np.asarray(Image.open(out), dtype=np.float32)
    diff = np.abs(got - want)
    print(f"max {diff.max()}, mean {diff.mean():.4f} (of 255)")
    assert got.shape == (44, 36, 3) and diff.max() <= 2.0 and diff.mean() < 0.6, (diff.max(), diff.mean())


def test_a_training_checkpoint_under_another_scope_matches_and_kernels_are_transposed(official, tmp_path):
    state = {k: v.numpy() for k, v in official.vars.items()}
    # a checkpoint saved during training: another outer scope, plus a discriminator and optimiser slots
    extra = {k.replace("generator/", "gan/G/", 1): v for k, v in state.items()}
    extra["gan/discriminator/conv_0/kernel"] = np.zeros((3, 3, 3, 32), np.float32)
    extra["gan/G/G_MODEL/Conv/weights/Adam"] = np.zeros((1, 1, 64, 3), np.float32)
    extra["global_step"] = np.array(60, np.int64)
    tf1_writer.write_checkpoint(tmp_path / "train" / "AnimeGAN.model-60", extra)
    tf1_writer.write_checkpoint(tmp_path / "g.ckpt", state)
    reg = get_registry()
    reference = load_weights(tmp_path / "g.ckpt.index", "animegan", reg)
    assert reference.layout == LAYOUT_V1_TF and reference.generator == V1_TF_OPTIONS
    loaded = load_weights(tmp_path / "train" / "AnimeGAN.model-60", "animegan", reg)  # the prefix, as TF names it
    assert loaded.layout == LAYOUT_V1_TF
    assert all(torch.equal(loaded.parts["generator"][k], v) for k, v in reference.parts["generator"].items())
    # HWIO -> OIHW and (H, W, C, 1) -> (C, 1, H, W)
    native = reference.parts["generator"]
    assert torch.equal(native["out.0.weight"], official.vars["generator/G_MODEL/Conv/weights"].permute(3, 2, 0, 1))
    depthwise = official.vars["generator/G_MODEL/m/r1/r1/w"]
    assert torch.equal(native["m.1.body.2.weight"][:, 0], depthwise[..., 0].permute(2, 0, 1))


def test_an_unknown_tf_checkpoint_is_named_as_such(tmp_path):
    tf1_writer.write_checkpoint(tmp_path / "other.ckpt", {"resnet/conv1/kernel": np.zeros((7, 7, 3, 64), np.float32)})
    with pytest.raises(WeightsUnavailable, match=r"TensorFlow checkpoint .*'resnet/conv1/kernel'.*animegan\.v1-tf"):
        load_weights(tmp_path / "other.ckpt", "animegan", get_registry())


def _official_v2_names() -> dict[str, tuple[int, ...]]:
    """AnimeGANv2's net/generator.py variables: Conv2DNormLReLU = Conv_i/weights + LayerNorm_i/{beta,gamma}."""
    out: dict[str, tuple[int, ...]] = {}
    g = "generator/G_MODEL"

    def cnl(scope, i, k, c_in, c_out):
        s = f"_{i}" if i else ""
        out[f"{g}/{scope}/Conv{s}/weights"] = (k, k, c_in, c_out)
        out[f"{g}/{scope}/LayerNorm{s}/gamma"] = out[f"{g}/{scope}/LayerNorm{s}/beta"] = (c_out,)

    for i, (k, c_in, c_out) in enumerate([(7, 3, 32), (3, 32, 64), (3, 64, 64)]):
        cnl("A", i, k, c_in, c_out)
    for i, (c_in, c_out) in enumerate([(64, 128), (128, 128)]):
        cnl("B", i, 3, c_in, c_out)
    cnl("C", 0, 3, 128, 128)
    cnl("C", 1, 3, 256, 128)
    for r, c_in in zip(range(1, 5), (128, 256, 256, 256), strict=True):
        cnl(f"C/r{r}", 0, 1, c_in, 2 * c_in)
        out[f"{g}/C/r{r}/r{r}/w"] = (3, 3, 2 * c_in, 1)
        out[f"{g}/C/r{r}/r{r}/bias"] = (2 * c_in,)
        out[f"{g}/C/r{r}/1/gamma"] = out[f"{g}/C/r{r}/1/beta"] = (2 * c_in,)
        out[f"{g}/C/r{r}/Conv_1/weights"] = (1, 1, 2 * c_in, 256)
        out[f"{g}/C/r{r}/2/gamma"] = out[f"{g}/C/r{r}/2/beta"] = (256,)
    cnl("D", 0, 3, 128, 128)
    cnl("D", 1, 3, 128, 128)
    for i, (k, c_in, c_out) in enumerate([(3, 128, 64), (3, 64, 64), (7, 64, 32)]):
        cnl("E", i, k, c_in, c_out)
    out[f"{g}/out_layer/Conv/weights"] = (1, 1, 32, 3)
    return out


def test_an_animeganv2_tf_checkpoint_maps_every_tensor_onto_the_v2_network(tmp_path):
    names = _official_v2_names()
    rng = np.random.default_rng(2)
    tf1_writer.write_checkpoint(tmp_path / "Shinkai-53.ckpt", {k: rng.standard_normal(s).astype(np.float32)
                                                        for k, s in names.items()})
    loaded = load_weights(tmp_path / "Shinkai-53.ckpt.index", "animegan", get_registry())
    assert loaded.layout == LAYOUT_V2_TF and loaded.generator["variant"] == "v2"
    net = GeneratorV2()
    assert len(names) == len(net.state_dict()) == 77
    net.load_state_dict(loaded.parts["generator"])  # strict: every key, every shape
    src = tf1.read_checkpoint(tmp_path / "Shinkai-53.ckpt")
    got = loaded.parts["generator"]
    assert np.array_equal(got["block_c.2.layers.1.1.bias"].numpy(), src["generator/G_MODEL/C/r2/r2/bias"])
    assert np.array_equal(got["block_e.2.1.weight"].numpy(),
                          src["generator/G_MODEL/E/Conv_2/weights"].transpose(3, 2, 0, 1))


def test_the_hayao_style_is_the_published_pair_with_the_tf_options():
    st = get_registry().style("animegan", "hayao")
    src = st.source
    base = "https://github.com/TachibanaYoshino/AnimeGAN/raw/master/checkpoint/generator_Hayao_weight/"
    assert [(f.url, f.git_sha1) for f in src.files] == [
        (base + "Hayao-60.ckpt.index", "36907806b09cb6e244576eb36e0fe3137fc64ee0"),
        (base + "Hayao-60.ckpt.data-00000-of-00001", "f4e7d3e5eba35bd5fbe0e8b2ea57565f4b49b2a7"),
    ]
    assert src.files[1].size == 3_956_096 * 4  # the 129 float32 tensors the index lists, back to back
    assert src.layout == LAYOUT_V1_TF and dict(st.generator) == V1_TF_OPTIONS
    assert "non-commercial" in st.license


def test_a_two_file_style_installs_and_runs_from_the_cache(official, tmp_path, monkeypatch):
    import dataclasses

    import anime_core
    from anime_core.specs import WeightsFile, WeightsSource
    from anime_core.weights import file_digests, import_file

    tf1_writer.write_checkpoint(tmp_path / "Hayao-60.ckpt", {k: v.numpy() for k, v in official.vars.items()})
    pair = [tmp_path / "Hayao-60.ckpt.index", tmp_path / "Hayao-60.ckpt.data-00000-of-00001"]
    reg = get_registry()
    st = reg.style("animegan", "hayao")  # the real style, pinned here to the files this test wrote
    files = [WeightsFile(f.url, git_sha1=file_digests(p)["git_sha1"])
             for f, p in zip(st.source.files, pair, strict=True)]
    local = dataclasses.replace(st, source=WeightsSource.of(*files, layout=st.source.layout))
    monkeypatch.setitem(reg.styles, st.key, local)
    import_file(st.key, local.source, pair[1])  # the .index is found beside the .data
    pipe = anime_core.load("animegan", style="hayao", device="cpu")
    x = torch.rand(1, 3, 24, 20)
    want = (official.run(x.permute(0, 2, 3, 1) * 2 - 1).permute(0, 3, 1, 2) + 1) / 2
    assert torch.allclose(pipe.forward(x), want.clamp(0, 1), atol=1e-4)


def test_anime_info_lists_the_layouts_and_both_files_and_license_of_hayao():
    from click.testing import CliRunner

    from anime_core.cli import cli

    res = CliRunner().invoke(cli, ["info", "animegan"])
    assert res.exit_code == 0, res.output
    accepted = res.output.split("checkpoints --weights takes:")[1].split("styles:")[0]
    assert all(f"  {layout}: " in accepted for layout in (LAYOUT_V1_TF, LAYOUT_V2_TF, "animegan.v2-pytorch"))
    hayao = res.output.split("  hayao:")[1].split("\n  paprika:")[0]
    assert "Hayao-60.ckpt.index" in hayao and "Hayao-60.ckpt.data-00000-of-00001" in hayao
    assert "license: AnimeGAN weights" in hayao and "non-commercial" in hayao
