"""The ``anime`` command line (click). See ``anime --help``.

Exit codes: 0 success, 1 some inputs failed (the others were written) or a run stopped,
2 usage or config error, 3 weights unavailable, 130 Ctrl-C. Errors are one sentence on stderr, one line: control
characters in it (from file names, names read from files) are shown escaped; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import click

from anime_core.errors import AnimeError
from anime_core.inference import speed
from anime_core.text import printable

_DEBUG = False


#: the subcommands, imported when one runs (or ``--help`` lists them): ``anime list`` loads only ``info``
COMMANDS = {
    "list": "anime_core.cli.info:list_command",
    "info": "anime_core.cli.info:info_command",
    "plugins": "anime_core.cli.info:plugins_command",
    "run": "anime_core.cli.run:run_group",
    "export": "anime_core.cli.export:export_group",
    "train": "anime_core.cli.train:train_command",
    "prepare": "anime_core.cli.train:prepare_command",
    "report": "anime_core.cli.report:report_command",
    "weights": "anime_core.cli.weights:weights_group",
    "ui": "anime_core.cli.ui:ui_command",
    "eval": "anime_core.cli.eval_cmd:eval_command",
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (start-up time: ``anime list`` is the hot path)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            module, _, attr = COMMANDS[name].partition(":")
            try:
                command = getattr(importlib.import_module(module), attr)
            except ImportError:  # e.g. eval without the metrics libraries in this build
                return None
            self.add_command(command, name)
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="anime-core", prog_name="anime")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (accepted anywhere on the line).")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """anime: turn photos into anime, generate anime faces, train the papers' models."""
    global _DEBUG
    _DEBUG = _DEBUG or debug
    # the application may tune the process (allocator reuse, cuDNN autotuning); a library call may not
    ctx.with_resource(speed.application())


def _speaks() -> bool:
    """Under ``accelerate launch`` every process runs the command: only rank 0 prints the error line."""
    return os.environ.get("RANK", "0") == "0"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn errors into one line and an exit code."""
    global _DEBUG
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug works anywhere on the line (before or after the sub-command), not only where click expects it
    end = args.index("--") if "--" in args else len(args)
    _DEBUG = "--debug" in args[:end]
    args = [a for a in args[:end] if a != "--debug"] + args[end:]
    try:
        # obj: the command line as given, for a command that prints how to continue it (anime run after Ctrl-C)
        code = cli.main(args=args, prog_name="anime", standalone_mode=False, obj={"argv": args})
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = 130
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except AnimeError as exc:
        if _DEBUG:
            traceback.print_exc()
        if _speaks():
            click.echo(f"error: {printable(exc)}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        code = 130
    except Exception as exc:  # an internal error: still one line unless --debug
        if _DEBUG:
            traceback.print_exc()
        message = printable(f"unexpected {type(exc).__name__}: {exc}")
        click.echo(f"error: {message} (rerun with --debug for the traceback)", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
