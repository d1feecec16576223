"""Every command of README.md's ``bash`` blocks that can run offline runs here, so the README cannot drift.

Each line runs through bash, as written, in a fresh folder holding small stand-ins for the files
the README names (``photo.jpg``, ``faces/``, ``my.safetensors``, ``run/generator.safetensors``...:
generated images and native weights files written by :func:`workspace`), with ``ANIME_OFFLINE=1``
and an empty ``ANIME_HOME``. One substitution: ``--style NAME`` becomes ``--weights
style-NAME.safetensors``, native weights of the same network, since a published style cannot be
downloaded offline and its cache is hash-checked. A command must exit with the code the README
promises (0 unless a marker says otherwise) and write what it says it writes: its ``-o`` target, a
``-> PATH`` its comment names, or ``anime_out/`` for ``anime run`` without ``-o``.

Markers in README.md (HTML comments, invisible on GitHub) on the lines right above a fence:

- ``<!-- docs-test: skip (REASON) -->``: the whole block is not run;
- ``<!-- docs-test: skip "PREFIX" (REASON) -->``: its lines that start with PREFIX are not run;
- ``<!-- docs-test: exit N "PREFIX" -->``: lines starting with PREFIX must exit with code N;

and ``# docs-test: skip (REASON)`` at the end of a single line. A marker without a reason, or a
PREFIX that matches no line, fails :func:`test_markers_are_well_formed_and_current`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from docs.fences import Block, fenced_blocks
from helpers import make_image, write_images
from PIL import Image

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = re.compile(r'^docs-test:\s*(skip|exit)\b\s*(\d+)?\s*(?:"([^"]+)")?\s*(?:\((.+)\))?\s*$')
LINE_SKIP = re.compile(r"#\s*docs-test:\s*skip\s*(?:\((.+)\))?\s*$")
STYLE = re.compile(r"--style(?:=|\s+)([\w.-]+)")
TIMEOUT = 300  # seconds per command


@dataclass
class Command:
    line: str
    lineno: int
    heading: str
    skip: str | None = None  # the reason, when not run
    exit: int = 0

    @property
    def id(self) -> str:
        """``L42-anime-run-animegan``: the line number and the first words."""
        return "-".join([f"L{self.lineno}", *shlex.split(self.line, comments=True)[:3]])


@dataclass
class Marker:
    kind: str  # skip | exit
    prefix: str | None
    reason: str | None
    code: int | None
    text: str


def _markers(block: Block) -> list[Marker]:
    out = []
    for text in block.comments:
        if not text.startswith("docs-test"):
            continue
        match = MARKER.match(text)
        assert match, f"README.md line {block.lineno - 1}: cannot read the marker <!-- {text} -->"
        kind, code, prefix, reason = match.groups()
        out.append(Marker(kind, prefix, reason, int(code) if code else None, text))
    return out


def _lines(block: Block) -> list[tuple[int, str]]:
    """Non-empty lines with backslash continuations joined, each with its line number."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for offset, raw in enumerate(block.lines):
        if not pending:
            start = block.lineno + offset
        pending += raw.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            out.append((start, pending.strip()))
        pending = ""
    return out


def readme_commands() -> list[Command]:
    """Every line of every ``bash`` block of README.md, with the markers applied (read fresh each time)."""
    commands = []
    for block in fenced_blocks(README):
        if block.lang not in ("bash", "sh", "shell", "console"):
            continue
        markers = _markers(block)
        whole = next((m for m in markers if m.kind == "skip" and m.prefix is None), None)
        for lineno, line in _lines(block):
            cmd = Command(line, lineno, block.heading)
            if whole is not None:
                cmd.skip = whole.reason
            for m in markers:
                if m.prefix is not None and line.startswith(m.prefix):
                    if m.kind == "skip":
                        cmd.skip = m.reason
                    else:
                        cmd.exit = m.code if m.code is not None else 0
            if match := LINE_SKIP.search(line):
                cmd.skip = match.group(1)
            commands.append(cmd)
    return commands


def test_markers_are_well_formed_and_current():
    """Every marker gives a reason (or an exit code) and matches a line: a stale marker hides nothing."""
    problems = []
    for block in fenced_blocks(README):
        lines = [line for _, line in _lines(block)]
        for m in _markers(block):
            if m.kind == "skip" and not m.reason:
                problems.append(f"line {block.lineno - 1}: <!-- {m.text} --> gives no (reason)")
            if m.kind == "exit" and (m.code is None or m.prefix is None):
                problems.append(f"line {block.lineno - 1}: <!-- {m.text} --> needs a code and a \"PREFIX\"")
            if m.prefix is not None and not any(line.startswith(m.prefix) for line in lines):
                problems.append(f"line {block.lineno - 1}: <!-- {m.text} --> matches no line of its block")
        if _markers(block) and block.lang not in ("bash", "sh", "shell", "console"):
            problems.append(f"line {block.lineno - 1}: a docs-test marker above a '{block.lang}' block")
    problems += [f"line {c.lineno}: '# docs-test: skip' gives no (reason)" for c in readme_commands()
                 if c.skip is None and LINE_SKIP.search(c.line)]
    assert not problems, "\n".join(problems)
    commands = readme_commands()
    assert any(c.skip is None for c in commands), "README.md has no command left that the docs test runs"
    assert all(c.skip is None or c.skip.strip() for c in commands)


# -- running them -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The files README.md's commands name, small: generated images and native weights of each model."""
    import anime_core
    from anime_core.weights import save_native

    root = tmp_path_factory.mktemp("readme")
    make_image((64, 48), 1).save(root / "photo.jpg")
    make_image((96, 64), 2).save(root / "huge.jpg")  # the name the --tile example uses; small here
    make_image((64, 48), 3).save(root / "frame.png")
    write_images(root / "faces", 2, (48, 48), seed=4)
    write_images(root / "faces" / "more", 1, (40, 48), seed=5, ext=".jpg")  # folders recurse
    write_images(root / "shots", 2, (128, 16), seed=6)  # long side 1024 at --size 1024, yet cheap
    write_images(root / "frames", 3, (64, 64), seed=7)

    def native(path: str, model: str, options: dict, parts: tuple[str, ...] = ("generator",)) -> None:
        torch.manual_seed(0)
        nets = {part: anime_core.build(model, "generator", **options) for part in parts}
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        save_native(root / path, nets, model, options)

    native("my.safetensors", "animegan", {"variant": "v2"})
    native("run/generator.safetensors", "cyclegan", {"arch": "resnet", "width": 4, "n_blocks": 1},
           ("generator", "generator_inverse"))
    native("faces.safetensors", "dcgan", {"image_size": 16, "width": 4})
    return root


def _style_weights(root: Path, line: str) -> str:
    """``--style NAME`` -> ``--weights style-NAME.safetensors`` (native weights of that model's network)."""
    model = shlex.split(line, comments=True)[2]
    assert model == "animegan", f"no stand-in weights for the styles of '{model}': add them to workspace()"

    def swap(match: re.Match[str]) -> str:
        name = f"style-{match.group(1)}.safetensors"
        if not (root / name).exists():
            os.link(root / "my.safetensors", root / name)
        return f"--weights {name}"

    return STYLE.sub(swap, line)


def _runnable() -> list[pytest.param]:
    return [pytest.param(c, id=c.id) for c in readme_commands() if c.skip is None]


@pytest.mark.slow
@pytest.mark.parametrize("cmd", _runnable())
def test_readme_command(cmd: Command, workspace, tmp_path):
    root = tmp_path / "cwd"
    shutil.copytree(workspace, root, copy_function=os.link)  # hard links: regular files, no copying
    line = _style_weights(root, cmd.line) if STYLE.search(cmd.line) else cmd.line
    before = {p for p in root.rglob("*")}
    env = dict(os.environ, ANIME_OFFLINE="1", ANIME_HOME=str(tmp_path / "home"),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    out = subprocess.run(["bash", "-c", line], cwd=root, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    said = f"README.md line {cmd.lineno}: '{line}' exited {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    assert out.returncode == cmd.exit, said

    args = shlex.split(line, comments=True)
    comment = line.split(" #", 1)[1] if " #" in line else ""
    promised = [args[args.index("-o") + 1]] if "-o" in args else []
    promised += re.findall(r"->\s*(\S+/\S*|\S+\.\w+)", comment)  # "one file -> out/photo.jpg"
    if args[:2] == ["anime", "run"] and "-o" not in args:
        promised.append("anime_out/")
    for target in promised:
        path = root / target
        assert path.exists(), f"{said}\nbut wrote no {target}"
        if path.is_dir():
            assert any(p.is_file() and p not in before for p in path.rglob("*")), f"{said}\nbut {target} is empty"
    if args[:2] == ["anime", "prepare"]:  # into the cache, never beside the data (issue 24 item 5)
        assert {p for p in root.rglob("*")} == before, f"{said}\nbut wrote beside the data"
        assert any(p.is_file() for p in (tmp_path / "home" / "prepared").rglob("*")), f"{said}\nbut wrote nothing"
    elif args[:2] == ["anime", "run"]:
        made = {p for p in root.rglob("*") if p.is_file()} - before
        assert made, f"{said}\nbut wrote nothing"
        if "--size" in args:  # the long side of every image written
            size = int(args[args.index("--size") + 1])
            for path in made:
                with Image.open(path) as img:
                    assert max(img.size) == size, f"{said}\nbut {path.name} is {img.size}"
    else:
        assert out.stdout.strip(), f"{said}\nbut printed nothing"
