"""Every ``--option`` a message of the CLI, the core or a plugin tells users to pass exists (issue 18).

The strings of every module are read with ``ast`` (f-strings included, docstrings not); each ``--name`` must
be accepted by the ``anime`` command the same string names (``anime train MODEL --resume``), or,
when it names none, by ``anime train`` for the training modules (their messages end ``anime
train``) and by some ``anime`` command for the others. Options of other programs (TensorBoard,
``accelerate launch``, pip) are listed below with the program.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from anime_core.cli import cli
from anime_core.registry import get_registry

PACKAGES = ["anime_core", "anime_plugin_animegan", "anime_plugin_cyclegan", "anime_plugin_dcgan", "anime_plugin_ae"]
#: options of other programs that messages quote, by program
FOREIGN = {"--logdir": "tensorboard", "--multi_gpu": "accelerate launch", "--num_processes": "accelerate launch",
           "--cpu": "accelerate launch", "--find-links": "pip", "--upgrade": "pip"}
#: modules whose messages a user meets while running 'anime train'
TRAINING = re.compile(r"anime_core/(training|config|schema)|anime_plugin_\w+/anime_plugin_\w+/(.*/)?"
                      r"(task|data|config|losses|prepare)\.py$")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")
COMMAND = re.compile(r"\banime (run|train|prepare|eval|weights|report|export|info|list|plugins|ui)\b")


def _sources() -> Iterator[Path]:
    for name in PACKAGES:
        root = Path(importlib.import_module(name).__file__).parent
        yield from (p for p in sorted(root.rglob("*.py")) if "build" not in p.relative_to(root).parts)


def _strings(path: Path) -> Iterator[tuple[int, str]]:
    """Every string constant and f-string of a module (an f-string's values become '{}'), docstrings aside."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside: set[int] = set()  # docstrings document code (other projects' options too), f-string parts
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                inside.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "{}" for v in node.values]
            inside.update(id(v) for v in node.values)
            yield node.lineno, "".join(str(p) for p in parts)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside:
            yield node.lineno, node.value


def _options(command: click.Command, ctx: click.Context) -> set[str]:
    found = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("--")}
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                found |= _options(sub, click.Context(sub, parent=ctx, info_name=name))
    return found


@pytest.fixture(scope="module")
def accepted() -> dict[str, set[str]]:
    """The options of each top-level command (a group's include its sub-commands', e.g. every model's)."""
    get_registry()
    root = click.Context(cli, info_name="anime")
    out = {name: _options(cli.get_command(root, name), click.Context(cli.get_command(root, name), parent=root))
           for name in cli.list_commands(root)}
    out[""] = {opt for p in cli.params for opt in (*p.opts, *p.secondary_opts)} | {"--help", "--debug"}
    return out


def test_every_option_a_message_names_exists(accepted):
    anywhere = set().union(*accepted.values())
    wrong = []
    for path in _sources():
        module = path.as_posix()
        for line, text in _strings(path):
            for match in OPTION.finditer(text):
                option = match.group()
                if option in FOREIGN and FOREIGN[option].split()[0] in text:
                    continue
                named = [m.group(1) for m in COMMAND.finditer(text[: match.start()])]
                if named:  # the closest command named before it
                    ok, where = option in accepted.get(named[-1], set()) | accepted[""], f"anime {named[-1]}"
                elif TRAINING.search(module):
                    ok, where = option in accepted["train"] | accepted[""], "anime train"
                else:
                    ok, where = option in anywhere, "any anime command"
                if not ok:
                    wrong.append(f"{module.split('site-packages/')[-1]}:{line}: {option} (not an option of {where})")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_wrong_option(accepted, tmp_path, monkeypatch):
    """The test above would catch the message of issue 18 ('pass --anime DIR' while training)."""
    assert "--anime" in accepted["prepare"] and "--anime" not in accepted["train"]
    assert "--resume" in accepted["train"] and "--style" in accepted["run"] and "--all-checkpoints" in accepted["eval"]
    assert OPTION.findall("pass --anime DIR (or data.anime=DIR); anime train x --resume-from y") == [
        "--anime", "--resume-from"]
    assert [m.group(1) for m in COMMAND.finditer("resume with: anime train ae --resume RUN")] == ["train"]
    assert TRAINING.search("/x/anime_plugin_animegan/anime_plugin_animegan/prepare.py")
