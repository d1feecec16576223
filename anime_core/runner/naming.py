"""Naming the outputs of a run: one unique name per input, never an input's own file."""

from __future__ import annotations

from pathlib import Path

from anime_core.errors import UsageError
from anime_core.inference import video
from anime_core.runner.inputs import MEDIA_EXTENSIONS, InputFile

DEFAULT_OUTPUT = Path("anime_out")


def unique_names(rels: list[Path], folder: Path, avoid_existing: bool = True) -> list[Path]:
    """One output name per input, all different (ignoring case, as some file systems do).

    An input keeps its own name if it is the first to claim it. A later input with a taken name
    gets ``NAME-1``, ``NAME-2`` ... skipping names another input keeps, names already given and
    (``avoid_existing``) files that exist in ``folder``, so an invented name never replaces anything.
    A run that skips existing outputs replaces nothing, so it names as if the folder were empty: the
    names an interrupted run gave, and the outputs it wrote under them are found again.
    """

    def key(rel: Path) -> str:
        return rel.as_posix().casefold()

    owner: dict[str, int] = {}
    for i, rel in enumerate(rels):
        owner.setdefault(key(rel), i)
    taken = set(owner)
    names = []
    for i, rel in enumerate(rels):
        name, n = rel, 0
        if owner[key(rel)] != i:
            while key(name) in taken or (avoid_existing and (folder / name).exists()):
                n += 1
                name = rel.with_name(f"{rel.stem}-{n}{rel.suffix}")
            taken.add(key(name))
        names.append(name)
    return names


def plan_outputs(
    items: list[InputFile], output: Path | None, skip_existing: bool = False
) -> tuple[list[tuple[InputFile, Path]], list[tuple[str, str]]]:
    """(input, destination) pairs and [(input, reason)] for those whose destination is an input.

    ``skip_existing``: the run writes no destination that exists, so invented names may be existing files.
    """
    out = output or DEFAULT_OUTPUT
    if out.suffix.lower() in MEDIA_EXTENSIONS and not out.is_dir():
        if len(items) > 1:
            raise UsageError(f"-o {out} names one file but {len(items)} inputs were given; give a folder")
        if items and video.is_video(items[0].path) != video.is_video(out):
            what = "a video" if video.is_video(out) else "an image"
            raise UsageError(
                f"-o {out} names {what} but {items[0].path} is not one; give a {items[0].path.suffix} name or a folder"
            )
        dests = [out] * len(items)
    else:
        dests = [out / rel for rel in unique_names([i.rel for i in items], out, not skip_existing)]
    inputs = {i.path.resolve() for i in items}
    jobs, failed = [], []
    for item, dest in zip(items, dests):
        if dest.resolve() in inputs:
            failed.append((str(item.path), f"output {dest} would overwrite an input; choose another -o"))
        else:
            jobs.append((item, dest))
    return jobs, failed
