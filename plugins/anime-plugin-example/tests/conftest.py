"""Every test gets an empty weights cache and no network (the suite runs offline)."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ANIME_HOME", str(tmp_path_factory.mktemp("anime_home")))
    monkeypatch.setenv("ANIME_OFFLINE", "1")
