"""``anime train MODEL`` and ``anime prepare MODEL``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from anime_core import runfiles
from anime_core.cli.common import warn_plugin_errors


@click.command("train", short_help="Train MODEL on your folders; resume with --resume RUN_DIR.")
@click.argument("model")
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--config", "-c", help="A YAML file, or a preset name of the model (see 'anime info MODEL').")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), help="Continue the run in this folder.")
@click.option("--init", "init", metavar="STYLE|FILE",
              help="Fine-tune: start from a style (animegan:paprika) or a weights file; the optimizers start fresh.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train_command(
    model: str, overrides: tuple[str, ...], config: str | None, resume: Path | None, init: str | None, quiet: bool
) -> int:
    """Train MODEL: defaults < --config < KEY=VALUE overrides (e.g. data.photo=photos/ train.max_steps=1000).

    With --init the run starts from pretrained weights (recorded with their sha256 in config.yaml);
    train.freeze=encoder keeps a model's encoder fixed where it has one.
    """
    from anime_core.training.loop import train

    main_process = os.environ.get("RANK", "0") == "0"  # under `accelerate launch`, speak once
    if main_process:
        warn_plugin_errors()
    run_dir = train(model, config=config, overrides=list(overrides), resume=resume, progress=not quiet, init=init)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # as anime run: gloo's threads joined before the interpreter ends
        from accelerate import PartialState

        from anime_core.runner.sharding import end_processes

        end_processes(PartialState())
    if main_process:
        click.echo(f"run saved in {run_dir}; try: anime run {model} --weights {run_dir / runfiles.EXPORT}", err=True)
    return 0


@click.command("prepare", short_help="Prepare MODEL's training data (e.g. AnimeGAN's edge-smoothed frames).")
@click.argument("model")
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--photo", type=click.Path(file_okay=False), help="Photo folder (data.photo).")
@click.option("--anime", type=click.Path(file_okay=False), help="Anime folder (data.anime).")
@click.option("--config", "-c", help="A YAML file or preset name.")
def prepare_command(
    model: str, overrides: tuple[str, ...], photo: str | None, anime: str | None, config: str | None
) -> int:
    """Prepare MODEL's training data (e.g. AnimeGAN's grayscale and edge-smoothed copies)."""
    from anime_core import config as cfglib
    from anime_core.errors import UsageError
    from anime_core.registry import get_registry
    from anime_core.training.data import prepared_data_errors

    warn_plugin_errors()
    spec = get_registry().model(model)
    prepare = spec.prepare_fn()
    if prepare is None:
        raise UsageError(f"model '{model}' needs no data preparation; go straight to 'anime train {model}'")
    extra = [f"data.photo={photo}"] * bool(photo) + [f"data.anime={anime}"] * bool(anime)
    cfg = cfglib.resolve(spec, config, [*extra, *overrides])
    with prepared_data_errors(cfg):
        prepare(cfg)
    return 0
