"""Issue 11: the CLI answers before torch could load. Listing commands import no torch, timm or
accelerate (checked in a fresh interpreter through ``sys.modules``, not by timing)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import subprocess_env

_PROBE = """
import contextlib, io, json, sys
from anime_core.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
heavy = [m for m in ("torch", "timm", "accelerate", "torchvision") if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy, "out": out.getvalue()}))
"""


def _probe(args: list[str]) -> dict:
    cmd = [sys.executable, "-c", _PROBE, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [["--help"], ["list"], ["list", "--json"], ["plugins"], ["weights", "list"], ["run", "--help"],
     ["train", "--help"], ["eval", "--help"], ["run", "animegan", "--help"]],
    ids=lambda a: " ".join(a),
)
def test_listing_and_help_import_no_torch(args):
    data = _probe(args)
    assert data["code"] == 0, data
    assert data["heavy"] == [], f"`anime {' '.join(args)}` imported {data['heavy']}"
    assert data["out"].strip()  # and it did answer


def test_list_json_still_lists_every_model():
    models = {m["name"] for m in json.loads(_probe(["list", "--json"])["out"])}
    assert {"animegan", "cyclegan", "dcgan", "pixelsake-sr", "ae"} <= models
