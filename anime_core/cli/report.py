"""``anime report RUN_DIR``: rebuild a training run's self-contained ``report.html``."""

from __future__ import annotations

from pathlib import Path

import click

from anime_core import runfiles
from anime_core.errors import UsageError


@click.command("report", short_help="Rebuild RUN_DIR/report.html: losses, samples, throughput, config.")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
def report_command(run_dir: Path) -> int:
    """Rebuild RUN_DIR/report.html from the run folder (training updates it on its own).

    The page needs no server: loss curves, learning rates and throughput (plots need
    'pip install "anime-core[report]"'), sample grids over time, the resolved config and the
    command to resume. Open it in any browser.
    """
    from anime_core.training.report import write_report  # torch: only when the command runs

    if not (run_dir / runfiles.CONFIG).is_file():
        raise UsageError(f"{run_dir} is not a run folder (no {runfiles.CONFIG}); give a folder 'anime train' made")
    try:
        path = write_report(run_dir)
    except OSError as exc:
        raise UsageError(f"cannot write {run_dir / 'report.html'} ({exc.strerror or exc}); check the folder") from None
    click.echo(str(path))
    return 0
