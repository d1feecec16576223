"""Bounded by design, the web app: it reads only its own runs, needs a password beyond this machine, refuses
oversize uploads while they stream in, and refuses out-of-range Size/Tile/Count values even from forged requests."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys

import pytest
from helpers import make_image, subprocess_env

from anime_core.errors import UsageError
from anime_core.ui import actions, training
from anime_core.ui.actions import Weights

SECRET = "root:x:0:0:the-secret-line\n"


@pytest.fixture
def planted(tmp_path):
    """A runs folder with one good run, and links planted to make the Train tab read files elsewhere."""
    root, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    good, outside = root / "cyclegan-20250101-000000", elsewhere / "cyclegan-20250101-000001"
    for run in (good, outside):
        (run / "samples").mkdir(parents=True)
        (run / "config.yaml").write_text("{}\n")
        (run / "train.log").write_text("step 1\n")
    secret = elsewhere / "passwd"
    secret.write_text(SECRET)
    (elsewhere / "metrics.csv").write_text("step,loss_g\n1,9.5\n")
    make_image((8, 8), 5).save(elsewhere / "secret.png")
    (root / "linked-run").symlink_to(outside, target_is_directory=True)  # a run folder that is a link
    hostile = root / "cyclegan-20250101-000002"  # a real run folder whose files are links
    hostile.mkdir()
    (hostile / "config.yaml").write_text("{}\n")
    (hostile / "train.log").symlink_to(secret)
    (hostile / "metrics.csv").symlink_to(elsewhere / "metrics.csv")
    (hostile / "samples").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "step-0000001.png").symlink_to(elsewhere / "secret.png")
    half = root / "cyclegan-20250101-000003"  # real samples folder, one linked sample
    (half / "samples").mkdir(parents=True)
    (half / "config.yaml").write_text("{}\n")
    (half / "samples" / "step-0000009.png").symlink_to(elsewhere / "secret.png")
    return root, good, outside, hostile, half, secret


def test_the_run_picker_accepts_only_runs_of_the_runs_folder(planted):
    root, good, outside, hostile, half, secret = planted
    assert sorted(training.list_runs(root)) == sorted(map(str, (good, hostile, half)))  # the linked run is not listed
    assert training.run_folder(root, str(good)) == good and training.run_folder(root, good.name) == good
    typed = [str(outside), str(root / ".." / "elsewhere" / outside.name), "linked-run", str(root / "linked-run"),
             "/etc", "..", ".", "", str(secret.parent), str(good / "samples")]
    for value in typed:
        with pytest.raises(UsageError, match=r"is not a run folder in .*; pick a run from the list") as err:
            training.run_folder(root, value)
        assert "\n" not in str(err.value)
    job = training.TrainJob(root)
    with pytest.raises(UsageError, match="is not a run folder"):
        job.resume("cyclegan", str(outside))
    assert not job.running


def test_a_run_folder_shows_no_file_through_a_symlink(planted):
    _, good, _, hostile, half, _ = planted
    assert training.read_log(good) == "step 1"
    assert training.read_log(hostile) == ""  # was the secret file's content
    assert training.metrics(hostile) == {}
    assert training.latest_sample(hostile) is None and training.latest_sample(half) is None
    assert training.run_file(hostile, "train.log") is None
    assert training.run_file(good, "train.log") == good / "train.log"


def _probe(env: dict[str, str] | None = None, *args: str) -> dict:
    """``anime ui ARGS`` in a fresh interpreter with gradio hidden (nothing can start a server here)."""
    code = (
        "import contextlib, io, json, sys\n"
        "sys.modules['gradio'] = None\n"
        "from anime_core.cli import main\n"
        "err = io.StringIO()\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):\n"
        "    try:\n        main(sys.argv[1:])\n"
        "    except SystemExit as exc:\n        code = exc.code\n"
        "print(json.dumps({'code': code, 'err': err.getvalue()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, "ui", *args], capture_output=True, text=True,
                         env={**subprocess_env(), **(env or {})}, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_serving_beyond_this_machine_needs_a_password():
    for args in (["--share", "on"], ["--host", "0.0.0.0"], ["--host", "192.168.1.5"]):
        data = _probe({"ANIME_UI_AUTH": ""}, *args)
        assert data["code"] == 2 and data["err"].count("\n") == 1, data
        assert "needs --auth USER:PASSWORD (or ANIME_UI_AUTH=USER:PASSWORD)" in data["err"], data
    data = _probe({"ANIME_UI_AUTH": ""}, "--host", "0.0.0.0", "--auth", "nopassword")
    assert data["code"] == 2 and "must be USER:PASSWORD" in data["err"], data
    # with a password (option or environment) it goes on, here to the missing-gradio message
    for env, args in (({}, ["--auth", "me:pw"]), ({"ANIME_UI_AUTH": "me:pw"}, [])):
        data = _probe(env, "--host", "0.0.0.0", *args)
        assert data["code"] == 2 and "needs gradio" in data["err"], data
    from anime_core.ui import ServeOptions, check_exposure

    check_exposure(ServeOptions())  # loopback without a password: as before
    check_exposure(ServeOptions(host="::1"))
    with pytest.raises(UsageError, match="--host 0.0.0.0 lets other machines"):
        check_exposure(ServeOptions(host="0.0.0.0"))


@pytest.fixture
def no_model(monkeypatch):
    """Reaching the model means the form's value was not checked first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the action reached the model with an unchecked value")

    monkeypatch.setattr(actions, "pipeline", refuse)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("size", 10**9, "size must be a whole number from 8 to 10000 px"),
        ("size", 10_001, "size must be a whole number from 8 to 10000 px"),
        ("tile", 10**9, "tile must be a whole number from 16 to 10000 px"),
        ("size", float("inf"), "size must be a whole number, not inf"),
        ("size", float("nan"), "size must be a whole number, not nan"),
        ("size", "4096; rm -rf", "size must be a number"),
    ],
)
def test_forged_size_and_tile_are_refused_before_the_model(tiny_registry, tmp_path, no_model, field, value, message):
    photo = tmp_path / "p.png"
    make_image((16, 16), 1).save(photo)
    with pytest.raises(UsageError, match=message) as err:
        actions.translate(str(photo), Weights("tiny"), **{field: value})
    assert "\n" not in str(err.value)


def test_size_follows_max_pixels_and_count_is_bounded(tiny_registry, tmp_path, no_model):
    with pytest.raises(UsageError, match=r"count is 1,000,000, above the limit of 64; `anime run MODEL --num N`"):
        actions.generate(Weights("tinygen"), num=10**6)
    with pytest.raises(UsageError, match="seed must be from"):
        actions.generate(Weights("tinygen"), num=4, seed=1e30)
    photo = tmp_path / "p.png"
    make_image((16, 16), 1).save(photo)
    with pytest.raises(UsageError, match="size must be a whole number from 8 to 256 px"):
        actions.translate(str(photo), Weights("tiny"), size=257, max_pixels=256 * 256)
    with pytest.raises(UsageError, match="from 8 to 256 px"):
        actions.compare(str(photo), [Weights("tiny")], size=300, max_pixels=256 * 256)
    assert actions.max_side() == math.isqrt(100_000_000) == 10_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # gradio's import and a served app: ~8 s
def test_the_served_app_asks_a_password_caps_uploads_and_refuses_forged_runs(tiny_registry, planted, tmp_path):
    pytest.importorskip("gradio")
    httpx = pytest.importorskip("httpx")
    from anime_core.ui import ServeOptions
    from anime_core.ui.app import build_app, start

    root, good, outside, *_ = planted
    app = build_app(actions.Workspace(tmp_path / "ws"), training.TrainJob(root), max_pixels=512 * 512)
    blocks = {getattr(b, "elem_id", None): b for b in app.blocks.values()}
    assert blocks["generate-num"].maximum == actions.MAX_COUNT
    assert blocks["photo-size"].maximum == blocks["video-tile"].maximum == blocks["compare-size"].maximum == 512
    # the run picker's handler, as a forged request would call it: refused before any file is read
    [show] = [f for f in app.fns.values() if blocks["train-runs"] in f.inputs and f.fn is not None
              and any(t[1] == "change" for t in f.targets)]
    status, *_, log, _ = show.fn({blocks["train-runs"]: str(outside)})
    assert "is not a run folder in" in status and not isinstance(log, str)
    status, *_, log, _ = show.fn({blocks["train-runs"]: good.name})
    assert log == "step 1" and "Resume" in status

    port = _free_port()
    options = ServeOptions(port=port, auth=("me", "pw"), max_upload=4096)
    try:
        local, _ = start(app, options)
        with httpx.Client(base_url=local.rstrip("/"), timeout=30) as client:
            upload = "/gradio_api/upload"
            assert client.post(upload, files={"files": ("a.png", b"x" * 100)}).status_code in (401, 403)
            assert client.post("/login", data={"username": "me", "password": "pw"}).status_code == 200
            small = client.post(upload, files={"files": ("a.png", b"x" * 100)})
            assert small.status_code == 200, small.text
            big = client.post(upload, files={"files": ("big.bin", os.urandom(64 * 1024))})
            assert big.status_code == 413 and "maximum allowed size of 4096 bytes" in big.text, big.text
            # a file inlined as a data: URL in a JSON request is no way around it, declared or streamed
            data_url = b'{"data": ["data:image/png;base64,' + b"A" * (2 << 20) + b'"]}'
            join = "/gradio_api/queue/join"
            assert client.post(join, content=data_url).status_code == 413
            chunks = (data_url[i:i + 65536] for i in range(0, len(data_url), 65536))
            assert client.post(join, content=chunks).status_code == 413  # chunked: counted as it arrives
    finally:
        app.close()
