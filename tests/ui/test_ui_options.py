"""A model's ``anime run`` options become form fields, and form values go back through click's own checks."""

from __future__ import annotations

from dataclasses import replace

import click
import pytest

from anime_core.errors import UsageError
from anime_core.ui.options import convert, fields


def _by_name(spec):
    return {f.name: f for f in fields(spec)}


def test_fields_follow_the_click_types_of_the_shipped_models(registry):
    ae = _by_name(registry.model("ae"))
    assert ae["strength"].kind == "float" and ae["strength"].slider
    assert (ae["strength"].minimum, ae["strength"].maximum, ae["strength"].default) == (0.0, 1.0, 1.0)
    assert ae["interpolate"].kind == "file" and ae["interpolate"].count == 2
    assert ae["steps"].kind == "int" and ae["steps"].minimum == 2 and ae["steps"].default == 8
    direction = _by_name(registry.model("cyclegan"))["direction"]
    assert direction.kind == "choice" and set(direction.choices) == {"photo2anime", "anime2photo"}
    assert direction.default == "photo2anime" and direction.label == "--direction"
    dcgan = _by_name(registry.model("dcgan"))
    assert dcgan["class_name"].kind == "text" and dcgan["class_name"].label == "--class"
    assert dcgan["interpolate"].kind == "int" and dcgan["interpolate"].default is None
    assert dcgan["truncation"].kind == "float" and not dcgan["truncation"].slider


def test_values_are_checked_and_converted_by_click(registry, tmp_path):
    ae = registry.model("ae")
    assert convert(ae, {"strength": "0.25"})["strength"] == 0.25
    assert convert(ae, {"strength": None, "steps": 4.0}) == {"strength": 1.0, "interpolate": None, "steps": 4}
    with pytest.raises(UsageError, match=r"Invalid value for '--strength': 2\.0 is not in the range"):
        convert(ae, {"strength": 2})
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    with pytest.raises(UsageError, match="--interpolate takes 2 files; 1 were given"):
        convert(ae, {"interpolate": [str(a)]})
    assert [p.name for p in convert(ae, {"interpolate": [str(a), str(b)]})["interpolate"]] == ["a.png", "b.png"]
    with pytest.raises(UsageError, match="Invalid value for '--interpolate': .*does not exist"):
        convert(ae, {"interpolate": [str(a), str(tmp_path / "gone.png")]})
    dcgan = registry.model("dcgan")
    assert convert(dcgan, {"interpolate": "", "truncation": "0.7"}) == {
        "class_name": None, "interpolate": None, "truncation": 0.7
    }
    with pytest.raises(UsageError, match="Invalid value for '--interpolate': 1 is not in the range x>=2"):
        convert(dcgan, {"interpolate": "1"})


def test_a_third_party_option_becomes_a_field_without_ui_code(registry):
    spec = replace(
        registry.model("animegan"),
        name="glow",
        run_options=(
            click.Option(["--glow-radius"], type=click.IntRange(1, 9), default=3, help="Bloom radius."),
            click.Option(["--warm"], is_flag=True),
        ),
    )
    got = _by_name(spec)
    assert got["glow_radius"].kind == "int" and (got["glow_radius"].minimum, got["glow_radius"].maximum) == (1, 9)
    assert got["glow_radius"].help == "Bloom radius." and got["warm"].kind == "bool"
    assert convert(spec, {"glow_radius": 5.0, "warm": True}) == {"glow_radius": 5, "warm": True}
    with pytest.raises(UsageError, match="--glow-radius"):
        convert(spec, {"glow_radius": 12})


def test_the_architecture_choice_is_a_field_left_out_when_blank(registry):
    """``anime run --variant/--arch`` in the form: blank lets the file decide, a choice reaches ``load``."""
    ae = registry.model("ae")
    variant = _by_name(ae)["variant"]
    assert variant.kind == "choice" and set(variant.choices) == {"lab", "rgb", "skip", "vae"}
    assert variant.default is None and variant.label == "--variant" and fields(ae)[0] == variant
    assert "variant" not in convert(ae, {"variant": ""}) and "variant" not in convert(ae, {})
    assert convert(ae, {"variant": "rgb"})["variant"] == "rgb"
    with pytest.raises(UsageError, match="Invalid value for '--variant': 'hsv' is not one of"):
        convert(ae, {"variant": "hsv"})
    assert _by_name(registry.model("cyclegan"))["arch"].label == "--variant"  # one name for every model
    assert not {"variant", "arch"} & set(_by_name(registry.model("dcgan")))  # one network: no field
