"""``python -m anime_core.cli`` (and ``accelerate launch -m anime_core.cli train ...``)."""

from anime_core.cli import main

main()
