"""Weights: native format, foreign layouts, safe loading, hashes, the real download path, import, offline."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import re
import subprocess
import threading
from pathlib import Path

import pytest
import tiny_anime_plugin
import torch

from anime_core.errors import WeightsUnavailable
from anime_core.specs import WeightsFile, WeightsSource
from anime_core.weights import files, store


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_native_round_trip_keeps_parts_and_options(tiny_registry, tmp_path):
    g = tiny_anime_plugin.TinyGenerator(width=4)
    inv = tiny_anime_plugin.TinyGenerator(width=4)
    path = files.save_native(
        tmp_path / "w.safetensors", {"generator": g, "generator_inverse": inv}, "tiny", {"width": 4}, extra={"step": 7}
    )
    loaded = files.load_weights(path, "tiny", tiny_registry)
    assert loaded.layout == "native" and loaded.generator == {"width": 4} and loaded.meta["step"] == "7"
    assert set(loaded.parts) == {"generator", "generator_inverse"}
    for k, v in g.state_dict().items():
        assert torch.equal(loaded.parts["generator"][k], v)
    with pytest.raises(WeightsUnavailable, match="holds weights for model 'tiny', not 'tinygen'"):
        files.load_weights(path, "tinygen", tiny_registry)


def test_foreign_layout_is_recognised_and_converted(tiny_registry, tmp_path):
    g = tiny_anime_plugin.TinyGenerator(width=6)
    foreign = {k.replace("body.", "legacy.", 1): v for k, v in g.state_dict().items()}
    torch.save({"state_dict": foreign}, tmp_path / "old.pth")  # wrapped, as many repos save them
    loaded = files.load_weights(tmp_path / "old.pth", "tiny", tiny_registry)
    assert loaded.layout == "tiny.legacy" and loaded.generator == {"width": 6}
    import anime_core

    pipe = anime_core.load("tiny", weights=tmp_path / "old.pth", device="cpu")
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        expected = (g(x * 2 - 1) + 1) / 2
    assert torch.allclose(pipe.forward(x), expected, atol=1e-6)


def test_weights_of_another_width_are_a_clear_error(tiny_registry, tmp_path):
    path = files.save_native(
        tmp_path / "w.safetensors", {"generator": tiny_anime_plugin.TinyGenerator(width=4)}, "tiny"
    )
    with pytest.raises(WeightsUnavailable, match=r"does not fit .*body.0.weight is \[4, 3, 3, 3\] in the file"):
        import anime_core

        anime_core.load("tiny", weights=path, device="cpu")  # no width in the metadata: default width 8


def test_unsafe_pickles_and_junk_are_refused(tiny_registry, tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(WeightsUnavailable, match="cannot be loaded safely"):
        files.read_state(tmp_path / "evil.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not really")
    with pytest.raises(WeightsUnavailable, match="not a readable safetensors"):
        files.read_state(tmp_path / "junk.safetensors")


def test_git_blob_sha1_matches_git(tmp_path):
    f = tmp_path / "blob.bin"
    f.write_bytes(bytes(range(256)) * 50)
    git = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True, check=True).stdout.strip()
    digests = store.file_digests(f)
    assert digests["git_sha1"] == git
    assert digests["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()


def _payload(root: Path) -> tuple[Path, str]:
    f = root / "w.bin"
    f.write_bytes(b"weights!" * 1000)
    return f, hashlib.sha256(f.read_bytes()).hexdigest()


def test_download_verifies_then_caches(server, monkeypatch):
    root, url = server
    f, sha = _payload(root)
    monkeypatch.delenv("ANIME_OFFLINE")
    src = WeightsSource(f"{url}/w.bin", sha256=sha)
    path = store.fetch("m:s", src, progress=False)
    assert path.read_bytes() == f.read_bytes() and path == store.cached_path("m:s", src)
    f.unlink()  # a second fetch must come from the cache
    assert store.fetch("m:s", src, progress=False) == path
    assert [p.name for p in path.parent.iterdir()] == ["w.bin"]  # no partial files left behind


def test_hash_mismatch_keeps_nothing_and_says_how_to_import(server, monkeypatch):
    root, url = server
    _payload(root)
    monkeypatch.delenv("ANIME_OFFLINE")
    src = WeightsSource(f"{url}/w.bin", git_sha1="0" * 40)
    with pytest.raises(WeightsUnavailable) as err:
        store.fetch("m:s", src, progress=False)
    msg = str(err.value)
    assert f"{url}/w.bin" in msg and "anime weights import m:s FILE" in msg and "git_sha1" in msg
    assert err.value.exit_code == 3
    assert not any(store.cached_path("m:s", src).parent.iterdir())


def test_unreachable_and_offline_errors_name_url_and_import_command(monkeypatch):
    src = WeightsSource("http://127.0.0.1:9/nothing.pt", sha256="0" * 64)
    with pytest.raises(WeightsUnavailable, match=r"ANIME_OFFLINE.*anime weights import m:s FILE"):
        store.fetch("m:s", src, progress=False)
    monkeypatch.delenv("ANIME_OFFLINE")
    with pytest.raises(WeightsUnavailable, match=r"could not download .*127\.0\.0\.1:9/nothing\.pt.*import m:s FILE"):
        store.fetch("m:s", src, progress=False)


def test_import_checks_the_hash_and_detects_later_corruption(tmp_path):
    f, sha = _payload(tmp_path)
    src = WeightsSource("https://example.org/w.bin", sha256=sha, sha256_prefix=sha[:8])
    with pytest.raises(WeightsUnavailable, match="is not the published weights"):
        store.import_file("m:s", WeightsSource(src.url, sha256="1" * 64), f)
    dest = store.import_file("m:s", src, f)
    assert store.fetch("m:s", src) == dest  # offline, but cached and verified
    dest.write_bytes(b"tampered")
    with pytest.raises(WeightsUnavailable, match="corrupt"):
        store.fetch("m:s", src)
    with pytest.raises(WeightsUnavailable, match="start with 00000000"):
        store.import_file("m:s", WeightsSource(src.url, sha256_prefix="00000000"), f)


# -- weights made of several files (a TF checkpoint's .index + .data) ----------------------------


def _pair(root: Path) -> tuple[WeightsSource, Path, Path]:
    """Two published files served from ``root``, pinned by git blob SHA-1 (index) and sha256 (data)."""
    index, data = root / "m.ckpt.index", root / "m.ckpt.data-00000-of-00001"
    index.write_bytes(b"index" * 100)
    data.write_bytes(b"data!" * 3000)
    git = store.file_digests(index)["git_sha1"]
    return (
        WeightsSource.of(
            WeightsFile(f"{root.as_uri()}/{index.name}", git_sha1=git, size=index.stat().st_size),
            WeightsFile(f"{root.as_uri()}/{data.name}", sha256=hashlib.sha256(data.read_bytes()).hexdigest()),
            layout="tiny.tf",
        ),
        index,
        data,
    )


def test_a_source_of_several_files_downloads_all_or_nothing(server, monkeypatch):
    root, url = server
    local, index, data = _pair(root)
    src = dataclasses.replace(
        local, url=f"{url}/{index.name}",
        companions=(dataclasses.replace(local.companions[0], url=f"{url}/{data.name}"),),
    )
    monkeypatch.delenv("ANIME_OFFLINE")
    # the second file's hash is wrong: the first, although good, is not installed either
    broken = dataclasses.replace(src, companions=(dataclasses.replace(src.companions[0], sha256="0" * 64),))
    with pytest.raises(WeightsUnavailable, match=rf"{data.name} does not match .*import m:s m\.ckpt\.index m\.ckpt"):
        store.fetch("m:s", broken, progress=False)
    folder = store.cached_path("m:s", src).parent
    assert not folder.exists() or not any(folder.iterdir())
    assert store.cache_status("m:s", src) == "not cached"
    path = store.fetch("m:s", src, progress=False)
    assert path == folder / index.name and sorted(p.name for p in folder.iterdir()) == sorted([index.name, data.name])
    assert (folder / data.name).read_bytes() == data.read_bytes() and store.cache_status("m:s", src) == "cached"
    (folder / data.name).write_bytes(b"tampered")
    assert store.cache_status("m:s", src) == "corrupt"
    with pytest.raises(WeightsUnavailable, match=rf"{data.name} are corrupt"):
        store.fetch("m:s", src, progress=False)


def test_offline_a_several_file_source_names_every_url_and_file(tmp_path):
    src, index, data = _pair(tmp_path)
    with pytest.raises(WeightsUnavailable) as err:
        store.fetch("m:s", src)
    msg = str(err.value)
    assert src.url in msg and src.companions[0].url in msg
    assert f"anime weights import m:s {index.name} {data.name}" in msg


def test_import_of_several_files_matches_by_content_or_finds_them_beside(tmp_path):
    (tmp_path / "pub").mkdir()
    src, index, data = _pair(tmp_path / "pub")
    # given in any order and under other names: matched by size and hash
    other = tmp_path / "renamed"
    other.mkdir()
    (other / "a").write_bytes(data.read_bytes())
    (other / "b").write_bytes(index.read_bytes())
    path = store.import_file("m:s", src, other / "a", other / "b")
    assert path == store.cached_path("m:s", src) and path.read_bytes() == index.read_bytes()
    assert (path.parent / data.name).read_bytes() == data.read_bytes()
    for f in path.parent.iterdir():
        f.unlink()
    # one file given, the other beside it under its published name
    assert store.import_file("m:s", src, index) == path and store.cache_status("m:s", src) == "cached"


def test_import_of_several_files_refuses_a_missing_wrong_or_stray_file(tmp_path):
    src, index, data = _pair(tmp_path)
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / index.name).write_bytes(index.read_bytes())
    url = re.escape(src.companions[0].url)
    with pytest.raises(WeightsUnavailable, match=rf"made of 2 files and {data.name} is neither .*{url}"):
        store.import_file("m:s", src, alone / index.name)
    (alone / data.name).write_bytes(b"truncated")
    with pytest.raises(WeightsUnavailable, match=rf"{data.name} is not the published {data.name} of m:s \(sha256 is"):
        store.import_file("m:s", src, alone / index.name)
    stray = tmp_path / "stray.bin"
    stray.write_bytes(b"something else")
    with pytest.raises(WeightsUnavailable, match="stray.bin is none of the published files of m:s"):
        store.import_file("m:s", src, index, data, stray)
    assert store.cache_status("m:s", src) == "not cached"  # nothing was installed by the failed imports


def test_a_companion_that_is_not_a_plain_file_name_is_refused(tmp_path):
    src, _, _ = _pair(tmp_path)
    evil = dataclasses.replace(src, companions=(WeightsFile("https://x/y", sha256="0" * 64, filename="../../evil"),))
    with pytest.raises(WeightsUnavailable, match="not a plain file name"):
        store.fetch("m:s", evil)


def test_anime_weights_import_takes_several_files(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from anime_core.cli import cli
    from anime_core.weights import catalog

    src, index, data = _pair(tmp_path)
    monkeypatch.setattr(catalog, "known_weights", lambda: {"backbone:pair": src})
    res = CliRunner().invoke(cli, ["weights", "import", "backbone:pair", str(data), str(index)])
    assert res.exit_code == 0, res.output
    assert "verified and installed in" in res.output
    assert store.cache_status("backbone:pair", src) == "cached"
    res = CliRunner().invoke(cli, ["weights", "list"])
    assert "(+1 file beside it)" in res.output
