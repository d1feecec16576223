"""Issue 12, weights: hostile metadata (2), full hashes (3), download faults (10), corrupt files (18), light listing.

Download faults are played by a local 127.0.0.1 server whose handlers stop by themselves
within a few seconds, so even the old code (which hung or wrote without end) finishes.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import tiny_anime_plugin
from safetensors.torch import save_file

from anime_core.errors import WeightsUnavailable
from anime_core.specs import WeightsSource
from anime_core.weights import files, store

PAYLOAD = b"weights!" * 1000  # 8000 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()
GIVE_UP = 6.0  # s: every handler ends by itself by then


class _Handler(http.server.BaseHTTPRequestHandler):
    """Each path plays one kind of bad server; all stop after GIVE_UP seconds at most."""

    stop: threading.Event

    def log_message(self, *args: object) -> None:
        pass

    def _head(self, length: int | None) -> None:
        self.send_response(200)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.flush()

    def do_GET(self) -> None:
        end = time.monotonic() + GIVE_UP
        try:
            if self.path == "/ok":
                self._head(len(PAYLOAD))
                self.wfile.write(PAYLOAD)
            elif self.path == "/trickle":  # one byte every 0.1 s
                self._head(100_000)
                while time.monotonic() < end and not self.stop.is_set():
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            elif self.path == "/silent":  # headers, then nothing
                self._head(100_000)
                while time.monotonic() < end and not self.stop.wait(0.05):
                    pass
            elif self.path == "/endless":  # no Content-Length, a body without end (capped for the old code)
                self._head(None)
                sent = 0
                while sent < 20 << 20 and time.monotonic() < end and not self.stop.is_set():
                    self.wfile.write(b"\0" * (64 << 10))
                    sent += 64 << 10
            elif self.path == "/dropped":  # announces 8000 bytes, sends 3000, hangs up
                self._head(len(PAYLOAD))
                self.wfile.write(PAYLOAD[:3000])
            elif self.path == "/liar":  # announces far more than the published size
                self._head(50 << 20)
                self.wfile.write(PAYLOAD)
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server(monkeypatch):
    """Base URL of the bad server; the process may go online and stalls are given up after 1 s."""
    stop = threading.Event()
    handler = type("Handler", (_Handler,), {"stop": stop})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.delenv("ANIME_OFFLINE")
    monkeypatch.setenv("ANIME_STALL_SECONDS", "1")
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    stop.set()
    httpd.shutdown()
    httpd.server_close()


def _fails(url: str, **source: object) -> tuple[str, float, Path]:
    src = WeightsSource(url, sha256=SHA, **source)  # type: ignore[arg-type]
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable) as err:
        store.fetch("m:s", src, progress=False)
    folder = store.cached_path("m:s", src).parent
    assert not folder.exists() or not any(folder.iterdir()), "a partial file was left in the cache"
    assert err.value.exit_code == 3
    return str(err.value), time.monotonic() - start, folder


# -- item 10: downloads ----------------------------------------------------------------------------


def test_a_trickling_server_is_given_up_after_the_stall_window(server):
    msg, took, _ = _fails(f"{server}/trickle")
    assert "stalled" in msg and "anime weights import m:s FILE" in msg, msg
    assert took < 4, f"gave up after {took:.1f} s with a 1 s window"


def test_a_silent_server_is_given_up_after_the_stall_window(server):
    msg, took, _ = _fails(f"{server}/silent")
    assert "stalled" in msg and took < 4, (msg, took)


def test_an_endless_body_stops_at_the_published_size(server):
    msg, _, _ = _fails(f"{server}/endless", size=len(PAYLOAD))
    assert f"more than the published size ({len(PAYLOAD)} bytes)" in msg, msg


def test_an_announced_size_other_than_the_published_one_is_refused_before_downloading(server):
    msg, _, _ = _fails(f"{server}/liar", size=len(PAYLOAD))
    assert f"announces {50 << 20} bytes but the published size is {len(PAYLOAD)}" in msg, msg


def test_an_endless_body_of_unknown_size_stops_at_the_limit(server, monkeypatch):
    monkeypatch.setattr(store, "UNDECLARED_LIMIT", 1 << 20)
    msg, _, _ = _fails(f"{server}/endless")
    assert "more than the 1048576-byte limit" in msg, msg


def test_a_dropped_connection_is_named_as_such_not_as_a_hash_mismatch(server):
    msg, _, _ = _fails(f"{server}/dropped")
    assert "connection dropped after 3000 of 8000 bytes" in msg and "hash" not in msg, msg


def test_a_good_download_still_verifies_and_caches(server):
    src = WeightsSource(f"{server}/ok", sha256=SHA, size=len(PAYLOAD))
    assert store.fetch("m:s", src, progress=False).read_bytes() == PAYLOAD


def test_a_bad_stall_setting_is_a_usage_error(server, monkeypatch):
    monkeypatch.setenv("ANIME_STALL_SECONDS", "soon")
    from anime_core.errors import UsageError

    with pytest.raises(UsageError, match="ANIME_STALL_SECONDS must be a number of seconds above 0, not 'soon'"):
        store.fetch("m:s", WeightsSource(f"{server}/ok", sha256=SHA), progress=False)


def test_sigterm_during_a_download_removes_the_partial_file(server, tmp_path, _isolated_home):
    script = (
        "from anime_core.specs import WeightsSource\n"
        "from anime_core.weights import store\n"
        f"store.fetch('m:s', WeightsSource('{server}/trickle', sha256='{SHA}'), progress=False)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ANIME_OFFLINE"}
    env.update(ANIME_HOME=str(_isolated_home), ANIME_STALL_SECONDS="30")
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    folder = _isolated_home / "weights" / "m" / "s"
    try:
        deadline = time.monotonic() + 20
        while not (folder.exists() and any(folder.glob("*.part"))):
            assert proc.poll() is None and time.monotonic() < deadline, "the download never started"
            time.sleep(0.05)
        time.sleep(0.3)  # some bytes written
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 143, (rc, proc.stderr.read() if proc.stderr else "")
    assert list(folder.iterdir()) == [], "SIGTERM left the partial download behind"


# -- item 3: pinned hashes --------------------------------------------------------------------------


def test_backbone_weights_are_pinned_by_full_sha256_and_size(registry):
    from anime_core.weights.catalog import catalog

    backbones = {k: e.source for k, e in catalog(registry).items() if k.startswith("backbone:")}
    assert set(backbones) == {"backbone:vgg19", "backbone:inception", "backbone:alexnet"}
    for key, src in backbones.items():
        assert src.sha256 and re.fullmatch(r"[0-9a-f]{64}", src.sha256), key
        prefix = re.search(r"-([0-9a-f]{8})\.pth$", src.file_name)
        assert prefix and src.sha256.startswith(prefix.group(1)), key  # the name keeps the prefix
        assert src.size and src.size > 1 << 20, key


def test_a_file_matching_only_the_size_and_prefix_is_refused(tmp_path):
    from anime_core.weights.known import INCEPTION_SOURCE as src

    fake = tmp_path / src.file_name
    with fake.open("wb") as fh:  # sparse: the right name and size, other bytes
        fh.truncate(src.size)
    with pytest.raises(WeightsUnavailable, match=f"expected {src.sha256}"):
        store.import_file("backbone:inception", src, fake)


def test_the_networks_download_the_pinned_sources():
    from anime_core import backbones, metrics
    from anime_core.weights import known

    assert backbones.VGG19_SOURCE == known.VGG19_SOURCE
    assert metrics.INCEPTION_SOURCE == known.INCEPTION_SOURCE and metrics.ALEXNET_SOURCE == known.ALEXNET_SOURCE


# -- item 2: generator options from a file ----------------------------------------------------------


def _tiny_state(width: int = 8) -> dict:
    return tiny_anime_plugin.TinyGenerator(width=width).state_dict()


@pytest.fixture
def build_log(monkeypatch):
    """Devices on which TinyGenerator was built: 'meta' costs nothing, anything else allocates."""
    log: list[tuple[int, str]] = []
    original = tiny_anime_plugin.TinyGenerator.__init__

    def init(self, width: int = 8) -> None:  # type: ignore[no-untyped-def]
        original(self, width)
        log.append((width, self.body[0].weight.device.type))

    monkeypatch.setattr(tiny_anime_plugin.TinyGenerator, "__init__", init)
    return log


def test_options_that_do_not_match_the_tensors_are_refused_before_allocating(tiny_registry, build_log):
    build = functools.partial(tiny_registry.build, "tiny", "generator")
    state = _tiny_state(8)
    build_log.clear()
    with pytest.raises(
        WeightsUnavailable, match=r"evil: generator option width=4096 does not match the file's tensors"
    ):
        files.check_options(build, {"width": 4096}, state, "evil")
    assert build_log and all(device == "meta" for _, device in build_log), build_log
    files.check_options(build, {"width": 8}, state, "good")  # the right options pass
    # the attack's shape: a tiny file with (almost) no tensors whose metadata asks for a huge network
    with pytest.raises(WeightsUnavailable, match=r"option width=4096 does not match .* the file holds 1\)"):
        files.check_options(build, {"width": 4096}, {"x": state["body.0.bias"][:1]}, "evil")
    assert all(device == "meta" for _, device in build_log), build_log


def test_absurd_option_values_are_refused_without_building(tiny_registry, build_log):
    build = functools.partial(tiny_registry.build, "tiny", "generator")
    state = _tiny_state()
    build_log.clear()
    for bad, why in [(10**9, "out of range"), (float("nan"), "not a finite number"), ("x" * 1000, "longer than")]:
        with pytest.raises(WeightsUnavailable, match=f"generator option width=.* {why}"):
            files.check_options(build, {"width": bad}, state, "evil")
    assert build_log == []
    with pytest.raises(WeightsUnavailable, match=r"do not build this model's generator \(TypeError"):
        files.check_options(build, {"width": "wide"}, state, "evil")
    with pytest.raises(WeightsUnavailable, match="no option 'depth'"):
        files.check_options(build, {"depth": 3}, state, "evil")


def test_loading_a_hostile_file_allocates_nothing(tiny_registry, build_log, tmp_path):
    import anime_core

    path = files.save_native(tmp_path / "evil.safetensors", {"generator": _tiny_state(8)}, "tiny", {"width": 2048})
    build_log.clear()
    with pytest.raises(WeightsUnavailable, match="width=2048"):
        anime_core.load("tiny", weights=path, device="cpu")
    assert all(device == "meta" for _, device in build_log), build_log


# -- item 18: corrupt files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("generator", '{"width": 8', "'generator' is not valid JSON"),
        ("generator", "[8]", "'generator' should be a JSON object, not list"),
        ("parts", "generator", "'parts' is not valid JSON"),
        ("parts", "[]", "'parts' should be a non-empty list of part names"),
    ],
)
def test_corrupt_json_metadata_is_one_sentence(tiny_registry, tmp_path, key, value, why):
    meta = {"format": "anime-core", "model": "tiny", "parts": json.dumps(["generator"]), "generator": "{}"}
    meta[key] = value
    path = tmp_path / "w.safetensors"
    save_file({f"generator.{k}": v for k, v in _tiny_state().items()}, str(path), metadata=meta)
    with pytest.raises(WeightsUnavailable, match=re.escape(f"{path} has corrupt metadata ({why}); export")):
        files.load_weights(path, "tiny", tiny_registry)


def test_cache_status_tells_corrupt_from_not_cached(tmp_path):
    good = tmp_path / "w.bin"
    good.write_bytes(PAYLOAD)
    src = WeightsSource("https://example.org/w.bin", sha256=SHA, size=len(PAYLOAD))
    assert store.cache_status("m:s", src) == "not cached"
    cached = store.import_file("m:s", src, good)
    assert store.cache_status("m:s", src) == "cached"
    cached.write_bytes(PAYLOAD[:-1] + b"?")
    assert store.cache_status("m:s", src) == "corrupt"
    cached.write_bytes(b"short")
    assert store.cache_status("m:s", src) == "corrupt"


# -- issue 11: listing weights imports no torch --------------------------------------------------


def test_weights_list_does_not_import_torch(_isolated_home, tmp_path):
    code = (
        "import sys\n"
        "from anime_core.cli import main\n"
        "try:\n"
        "    main(['weights', 'list'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO TORCH')\n"
    )
    env = dict(os.environ, ANIME_HOME=str(_isolated_home))
    cmd = [sys.executable, "-c", code]
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "backbone:vgg19" in out.stdout
    assert out.stdout.strip().endswith("NO TORCH"), out.stdout[-300:]
