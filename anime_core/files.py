"""Image folders: listing the images below a folder, and pairing two folders by file name.

One implementation for every reader of folders: the training datasets (``data.photo``,
``data.anime``; paired ``ae`` data) and ``anime eval`` (``--real``, ``--fake``). Files are the
ones ``anime run`` reads (:data:`~anime_core.inference.io.IMAGE_EXTENSIONS`), found recursively
and sorted. Two folders pair files by their path relative to the folder without the extension
(``sub/a.jpg`` pairs with ``sub/a.png``: a translated output may change format). Light: no torch.
"""

from __future__ import annotations

from pathlib import Path

from anime_core.errors import UsageError
from anime_core.inference.io import IMAGE_EXTENSIONS

SHOWN = 5  # unmatched names listed in an error before "and N more"


def list_images(folder: str | Path | None, what: str = "folder", error: type[UsageError] = UsageError) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted); ``error`` (exit 2) if it is missing or holds none.

    ``what`` names the folder in messages (``--real``, ``anime folder (data.anime)``).
    """
    if folder is None:
        raise error(f"no {what} given; set it to a folder of images")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise error(f"{what} {folder} does not exist or is not a folder; give a folder of images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise error(f"{what} {folder} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return files


def _keyed(folder: Path, what: str, error: type[UsageError]) -> dict[str, Path]:
    keyed: dict[str, Path] = {}
    for f in list_images(folder, what, error):
        key = f.relative_to(folder).with_suffix("").as_posix()
        if key in keyed:
            raise error(f"{what} holds both {keyed[key].name} and {f.name}; files are paired by name without "
                        f"extension, so keep one of them")
        keyed[key] = f
    return keyed


def match_pairs(first: str | Path, second: str | Path, names: tuple[str, str] = ("--real", "--fake"),
                error: type[UsageError] = UsageError, why: str = "") -> list[tuple[str, Path, Path]]:
    """``[(name, first_file, second_file)]`` matched by relative name without extension, sorted by name.

    Names without a partner are ``error``, listing them per folder; ``names`` are the folders'
    names in messages and ``why`` ends the message (what pairs them).
    """
    first, second = Path(first).expanduser(), Path(second).expanduser()
    a, b = _keyed(first, names[0], error), _keyed(second, names[1], error)
    problems = []
    for missing, here, there in ((sorted(set(b) - set(a)), names[1], names[0]),
                                 (sorted(set(a) - set(b)), names[0], names[1])):
        if missing:
            shown = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
            problems.append(f"{len(missing)} image(s) in {here} have no partner in {there} ({shown})")
    if problems:
        raise error("; ".join(problems) + f"; {why or 'files are paired by relative name without extension'}")
    return [(key, a[key], b[key]) for key in sorted(a)]
