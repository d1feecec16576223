"""plugins/README.md's "Publish a style in five minutes", run end to end, so the guide cannot drift.

The plugin is built from the guide's own snippets: every fenced block of that section whose first
line is ``# anime-style-mine/<path>`` is written to that path. Then each line of the section's
``bash`` block is run in order by the handler for its command (HANDLERS): ``cp`` and
``sha256sum`` as written, ``pip install ./DIR`` into a temporary site folder (no index, no
dependencies: they are installed), ``anime ...`` as written with that folder on PYTHONPATH, the
weights served from 127.0.0.1 (the folder the user would upload from), ``pytest`` as written.
Two lines are checked instead of run: ``pip install "anime-core[test]"`` (the extra must exist
and bring pytest) and the publishing line (it uploads to PyPI). A line no handler knows fails the
test, so a new step in the guide needs a check here.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from docs.fences import Block, fenced_blocks
from helpers import make_image
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "plugins" / "README.md"
SECTION = "Publish a style in five minutes"
FILE_HEADER = re.compile(r"^#\s+(anime-style-mine/\S+)\s*$")
TIMEOUT = 300  # seconds per command: a hung download or pip ends the test instead of the suite


def section_blocks() -> list[Block]:
    blocks = [b for b in fenced_blocks(GUIDE) if b.heading == SECTION]
    assert blocks, f"{GUIDE} has no fenced blocks under '## {SECTION}'"
    return blocks


def snippet_files() -> dict[str, str]:
    """``{relative path: text}`` of the blocks that start with ``# anime-style-mine/<path>``."""
    files = {}
    for block in section_blocks():
        if block.lines and (match := FILE_HEADER.match(block.lines[0])):
            files[match.group(1)] = "\n".join(block.lines) + "\n"
    return files


def commands() -> list[str]:
    (bash,) = [b for b in section_blocks() if b.lang == "bash"]
    return [line.strip() for line in bash.lines if line.strip()]


@dataclass
class Walk:
    """The user's folder, the site folder the plugin is installed into, and the state the steps share."""

    root: Path
    site: Path
    home: Path
    url: str
    files: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    sha256: str = ""

    def run(self, line: str) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(["bash", "-c", line], cwd=self.root, env=self.env, capture_output=True, text=True,
                             timeout=TIMEOUT)
        assert out.returncode == 0, f"'{line}' exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
        return out

    def write_plugin(self) -> None:
        """Write the snippets; the module gets the served URL and the hash sha256sum printed."""
        for rel, text in self.files.items():
            if rel.endswith(".py") and "/tests/" not in rel:
                text = _set(text, "URL", f"{self.url}/{_served_name(text)}")
                text = _set(text, "SHA256", self.sha256)
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def _served_name(module: str) -> str:
    match = re.search(r'^URL = "([^"]+)"', module, re.M)
    assert match, "the guide's module no longer has a line URL = \"...\""
    return match.group(1).rstrip("/").rsplit("/", 1)[-1]


def _set(module: str, name: str, value: str) -> str:
    text, count = re.subn(rf'^{name} = "[^"]*"', f'{name} = "{value}"', module, flags=re.M)
    assert count == 1, f"the guide's module should have one line {name} = \"...\", it has {count}"
    return text


# -- one handler per command of the walk-through -------------------------------------------------


def _cp(walk: Walk, line: str, args: list[str]) -> None:
    walk.run(line)
    assert (walk.root / args[-1] / Path(args[-2]).name).is_file(), f"'{line}' copied nothing"


def _sha256sum(walk: Walk, line: str, args: list[str]) -> None:
    printed = walk.run(line).stdout.split()[0]
    assert printed == hashlib.sha256((walk.root / args[1]).read_bytes()).hexdigest()
    walk.sha256 = printed
    walk.write_plugin()


def _pip_install(walk: Walk, line: str, args: list[str]) -> None:
    target = args[2]
    if target.startswith("anime-core["):  # the extra the contract needs: it must exist and bring pytest
        extra = target.split("[", 1)[1].rstrip("]")
        assert extra in _extras(), f"anime-core has no '{extra}' extra, which the guide tells users to install"
        assert any(r.startswith("pytest") for r in _extras()[extra]), _extras()[extra]
        return
    assert Path(target).name == "anime-style-mine", f"pip installs {target}, not the walk-through's plugin"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
           "--target", str(walk.site), target]
    out = subprocess.run(pip, cwd=walk.root, env=walk.env, capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    (entry_points,) = walk.site.glob("anime_style_mine-*.dist-info/entry_points.txt")
    assert "[anime.plugins]" in entry_points.read_text()


def _extras() -> dict[str, list[str]]:
    """anime-core's extras: from the repo's pyproject.toml when there is one (an editable install's
    metadata lags behind it), else from the installed metadata."""
    pyproject = REPO / "pyproject.toml"
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = None
    if tomllib is not None and pyproject.is_file():
        return tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    meta = importlib.metadata.metadata("anime-core")
    extras: dict[str, list[str]] = {e: [] for e in meta.get_all("Provides-Extra") or []}
    for req in meta.get_all("Requires-Dist") or []:
        if match := re.search(r"extra == ['\"]([\w-]+)['\"]", req):
            extras.setdefault(match.group(1), []).append(req)
    return extras


def _anime(walk: Walk, line: str, args: list[str]) -> None:
    out = walk.run(line)
    if args[1] == "list":
        assert re.search(r"^animegan\s.*\bmine\b", out.stdout, re.M), out.stdout + out.stderr
    elif args[1:3] == ["weights", "pull"]:
        (cached,) = (walk.home / "weights" / "animegan" / "mine").iterdir()
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == walk.sha256
    elif args[1] == "run":
        photo, out_dir = args[args.index("-o") - 1], args[args.index("-o") + 1]
        with Image.open(walk.root / out_dir / photo) as made, Image.open(walk.root / photo) as given:
            assert made.size == given.size  # a native file and no preprocess: the photo's own size
    else:
        raise AssertionError(f"no check for '{line}': add one to {__file__}")


def _pytest(walk: Walk, line: str, args: list[str]) -> None:
    from anime_core.testing import CHECKS

    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args[1:]]
    out = subprocess.run(cmd, cwd=walk.root, env=walk.env, capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout[-3000:]
    passed = set(re.findall(r"test_contract\[(\w+)\] PASSED", out.stdout))
    assert passed == set(CHECKS), out.stdout[-3000:]


def _publish(walk: Walk, line: str, args: list[str]) -> None:
    """Not run: it uploads to PyPI. ``pip install`` above built the same pyproject into a wheel."""
    assert args[:3] == ["python", "-m", "build"] and "twine" in line


HANDLERS: dict[str, Callable[[Walk, str, list[str]], None]] = {
    "cp": _cp, "sha256sum": _sha256sum, "pip": _pip_install, "anime": _anime, "pytest": _pytest, "python": _publish,
}


# -- tests -------------------------------------------------------------------------------------------


def test_the_walkthrough_is_a_complete_plugin_with_a_check_for_every_line():
    files = snippet_files()
    assert set(files) == {"anime-style-mine/pyproject.toml", "anime-style-mine/anime_style_mine.py",
                          "anime-style-mine/tests/test_contract.py"}
    for rel, text in files.items():
        if rel.endswith(".py"):
            compile(text, rel, "exec")  # a snippet that does not even parse fails here, before the slow test
    assert 'mine = "anime_style_mine"' in files["anime-style-mine/pyproject.toml"]
    lines = commands()
    assert 5 <= len(lines) <= 10, "the walk-through promises about ten lines"
    unknown = [line for line in lines if shlex.split(line, comments=True)[0] not in HANDLERS]
    assert not unknown, f"no handler in {__file__} for {unknown}"


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[Path, str]]:
    """The user's folder, also served on 127.0.0.1 (it stands in for the URL the weights are uploaded to)."""
    root = tmp_path / "work"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.slow
def test_publish_a_style_in_five_minutes(served, tmp_path):
    import anime_core
    from anime_core.weights import save_native

    # pip builds the plugin with the venv's setuptools: without an index it cannot fetch one (Python >= 3.12
    # venvs come without it; anime-core[dev] should bring it)
    pytest.importorskip("setuptools", reason="setuptools is not installed, so pip cannot build the plugin offline")
    root, url = served
    walk = Walk(root, tmp_path / "site", tmp_path / "home", url, snippet_files())
    walk.env = _env(walk)
    # what `anime train animegan` leaves behind: a run folder holding the exported generator
    run_dir = root / "runs" / "animegan-20250101-120000"
    run_dir.mkdir(parents=True)
    save_native(run_dir / "generator.safetensors", {"generator": anime_core.build("animegan", "generator")},
                "animegan", {"variant": "v1"})
    make_image((64, 48), 7).save(root / "photo.jpg")
    walk.write_plugin()  # SHA256 is filled in when the walk-through's sha256sum line runs

    for line in commands():
        args = shlex.split(line, comments=True)
        HANDLERS[args[0]](walk, line, args)
    assert walk.sha256, "the walk-through never hashed the weights"


def _env(walk: Walk) -> dict[str, str]:
    """The venv's commands first, the plugin's site folder importable, a fresh cache, no proxy for 127.0.0.1."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.pop("ANIME_OFFLINE", None)  # the only server these commands reach is the test's own on 127.0.0.1
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONPATH=str(walk.site),
        ANIME_HOME=str(walk.home),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


def test_a_pt_of_our_own_state_dict_is_a_native_style(tmp_path):
    """The guide, section 6: such a file takes layout="native", loads as "plain" into StyleSpec.generator's network."""
    import dataclasses
    import types

    import torch

    import anime_core
    from anime_core import hookimpl
    from anime_core.api import resolve
    from anime_core.registry import load_registry, set_registry
    from anime_core.specs import StyleSpec, WeightsSource
    from anime_core.testing import check_plugin
    from anime_core.weights import file_digests, import_file

    torch.manual_seed(0)
    net = anime_core.build("animegan", "generator", variant="v1")
    path = tmp_path / "mine.pt"
    torch.save(net.state_dict(), path)
    style = StyleSpec("animegan", "plainpt", WeightsSource("https://example.org/mine.pt", layout="native",
                      sha256=file_digests(path)["sha256"]), generator={"variant": "v1"}, license="CC0-1.0")
    plugin = types.SimpleNamespace(anime_register_styles=hookimpl(lambda: [style]))
    assert not check_plugin(plugin, name="plainpt", requires=["animegan"], checks=("styles",))
    plain = dataclasses.replace(style, source=dataclasses.replace(style.source, layout="plain"))  # not a layout name
    odd = types.SimpleNamespace(anime_register_styles=hookimpl(lambda: [plain]))
    problems = check_plugin(odd, name="plainpt", requires=["animegan"], checks=("styles",))
    assert any("layout 'plain' is neither 'native' nor a converter" in p for p in problems), problems
    set_registry(load_registry(extra=[("plainpt", plugin)]))
    try:
        import_file(style.key, style.source, path)
        assert resolve("animegan", style="plainpt").loaded.layout == "plain"
        pipe = anime_core.load("animegan", style="plainpt", device="cpu")
        loaded = pipe.generator.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in net.state_dict().items())
    finally:
        set_registry(None)
