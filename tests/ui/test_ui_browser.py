"""``anime ui`` in a real browser: headless Chromium (Selenium) uploads a photo and a weights file, runs
AnimeGAN v2 (random weights saved in the native format), sees the result and downloads it; and streams
Chromium's fake camera (``--use-fake-device-for-media-stream``) through the Webcam tab.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``);
skipped, with that reason, only where they are missing. ``ANIME_UI_SCREENSHOT=docs/ui.png`` also saves
the screenshot there (the README's); it is always taken into the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from helpers import make_image, subprocess_env
from PIL import Image

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
WAIT = 60  # seconds for the server to answer and for a run to finish, each


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, tmp_path: Path) -> subprocess.Popen:
    """``anime ui`` in a subprocess, answering HTTP (or the test fails with its output)."""
    log = (tmp_path / "ui.log").open("w")
    env = subprocess_env(ANIME_HOME=str(tmp_path / "home"), ANIME_OFFLINE="1", GRADIO_TEMP_DIR=str(tmp_path / "gr"))
    proc = subprocess.Popen([sys.executable, "-m", "anime_core.cli", "ui", "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    end = time.monotonic() + 2 * WAIT
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"anime ui exited with {proc.returncode}: {(tmp_path / 'ui.log').read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail(f"anime ui did not answer within {2 * WAIT} s: {(tmp_path / 'ui.log').read_text()}")


def _browser(downloads: Path, camera: bool = False):
    """Headless Chromium; ``camera``: its fake webcam (a test pattern), granted without asking."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    fake = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream") if camera else ()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100", *fake):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no headless Chromium: apt-get install chromium chromium-driver")
def test_photo_to_anime_in_a_browser(tmp_path):
    pytest.importorskip("gradio")
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    import anime_core
    from anime_core.weights.files import save_native

    photo, weights = tmp_path / "street.png", tmp_path / "random-v2.safetensors"
    make_image((384, 256), seed=7).save(photo)
    save_native(weights, {"generator": anime_core.build("animegan", variant="v2")}, "animegan", {"variant": "v2"})
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    server = _serve(_free_port(), tmp_path)
    port = int(server.args[-1])
    driver = _browser(downloads)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, WAIT)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#photo-input input[type=file]"))
        picked = driver.find_element(By.CSS_SELECTOR, "#photo-model input").get_attribute("value")
        assert picked == "animegan"  # the registry filled the picker
        driver.find_element(By.CSS_SELECTOR, "#photo-input input[type=file]").send_keys(str(photo))
        driver.find_element(By.CSS_SELECTOR, "#photo-weights input[type=file]").send_keys(str(weights))
        wait.until(lambda d: "uploaded weights file" in d.find_element(By.ID, "photo-note").text)
        driver.find_element(By.ID, "photo-run").click()
        status = driver.find_element(By.ID, "photo-status")
        wait.until(lambda d: "wrote" in status.text or "Error" in status.text)
        assert "wrote street-animegan" in status.text, status.text
        def loaded(d):  # both images in the page and decoded (naturalWidth is 0 while one still loads)
            found = d.find_elements(By.CSS_SELECTOR, "#photo-result img")
            decoded = all(i.get_attribute("naturalWidth") not in (None, "0") for i in found)
            return found if len(found) == 2 and decoded else []

        shown = wait.until(loaded)
        assert [img.get_attribute("naturalWidth") for img in shown] == ["384", "384"]  # before, after
        driver.execute_script("window.scrollTo(0, 0)")  # the click scrolled the button into view
        time.sleep(0.5)  # let the slider settle for the screenshot
        shot = tmp_path / "ui.png"
        driver.save_screenshot(str(shot))
        driver.find_element(By.ID, "photo-download").click()
        wait.until(lambda d: [p for p in downloads.iterdir() if p.suffix == ".png"])
        [got] = [p for p in downloads.iterdir() if p.suffix == ".png"]
    finally:
        driver.quit()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    # the downloaded file is exactly what the Python API computes from the same photo and weights
    expected = anime_core.load("animegan", weights=weights, device="cpu")(Image.open(photo))
    assert got.name.startswith("street-animegan") and Image.open(got).size == (384, 256)
    assert np.abs(np.asarray(Image.open(got), np.int16) - np.asarray(expected, np.int16)).max() <= 1
    assert Image.open(shot).width == 1400 and len(np.unique(np.asarray(Image.open(shot)))) > 50
    if os.environ.get("ANIME_UI_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["ANIME_UI_SCREENSHOT"])


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no headless Chromium: apt-get install chromium chromium-driver")
def test_webcam_tab_streams_stylised_frames(tmp_path):
    """Chromium's fake camera streams into the Webcam tab; stylised frames come back with a rate above 0 fps."""
    pytest.importorskip("gradio")
    pytest.importorskip("selenium")
    import re

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    import anime_core
    from anime_core.ui.webcam import DEFAULT_SIDE
    from anime_core.weights.files import save_native

    weights = tmp_path / "random-v2.safetensors"
    save_native(weights, {"generator": anime_core.build("animegan", variant="v2")}, "animegan", {"variant": "v2"})
    server = _serve(_free_port(), tmp_path)
    port = int(server.args[-1])
    driver = _browser(tmp_path, camera=True)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, WAIT)
        tab = wait.until(lambda d: [t for t in d.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                                    if t.text.strip() == "Webcam"])
        tab[0].click()
        driver.find_element(By.CSS_SELECTOR, "#webcam-weights input[type=file]").send_keys(str(weights))
        wait.until(lambda d: "uploaded weights file" in d.find_element(By.ID, "webcam-note").text)
        cam = driver.find_element(By.ID, "webcam-input")
        cam.find_element(By.CSS_SELECTOR, "[title='grant webcam access'] button").click()
        record = wait.until(lambda d: next((b for b in cam.find_elements(By.CSS_SELECTOR, "button")
                                            if b.text.strip() == "Record"), None))
        record.click()
        status = driver.find_element(By.ID, "webcam-fps")
        sources: set[str] = set()

        def streaming(d) -> bool:
            sources.update(img.get_attribute("src") for img in d.find_elements(By.CSS_SELECTOR, "#webcam-result img"))
            rate = re.search(r"([0-9.]+) fps", status.text)
            assert "Error" not in status.text, status.text
            return bool(rate and float(rate.group(1)) > 0 and len(sources - {None, ""}) >= 3)

        WebDriverWait(driver, 3 * WAIT, poll_frequency=0.3).until(streaming)
        assert f"{DEFAULT_SIDE}x" in status.text, status.text  # the default long side, shown with the rate
        last = driver.find_element(By.CSS_SELECTOR, "#webcam-result img").get_attribute("src")
        with urllib.request.urlopen(last, timeout=10) as resp:
            frame = Image.open(BytesIO(resp.read())).convert("RGB")
    finally:
        driver.quit()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    assert max(frame.size) == DEFAULT_SIDE  # Chromium's fake camera is 640x480: scaled to the long side
    # a stylised picture, not a blank: the fake camera's frame is mostly one flat colour, so a random-weights
    # model gives few colours (18 seen in CI), but more than the single one of an empty or black frame
    assert len(np.unique(np.asarray(frame).reshape(-1, 3), axis=0)) > 1
