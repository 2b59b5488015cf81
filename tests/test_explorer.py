"""The HTML explorer in a real headless browser (Debian's chromium via chromedriver)."""

import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, cli, data_dir, require_data
from medmap.explorer import write_explorer

XSS_NAMES = ["<img src=x onerror=alert(1)>", '<img src=x onerror="window.__pwned=1">']


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test installs "
                    "them with apt where it can)")  # fmt: skip
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,800"):
        options.add_argument(argument)
    session = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
    yield session
    session.quit()


def grid_map(tmp_path):
    """36 solid-colour images on a 6x6 grid of map points, three classes (two hostile names)."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (36, 3), dtype=np.uint8)
    images = np.broadcast_to(colours[:, None, None, :], (36, 28, 28, 3)).copy()
    embedding = np.stack(np.meshgrid(np.arange(6.0), np.arange(6.0)), -1).reshape(-1, 2)
    labels = np.arange(36) % 3
    names = ["basophil", *XSS_NAMES]
    page = write_explorer(tmp_path / "explorer.html", embedding, labels, names, images,
                          title=f"test {XSS_NAMES[0]}", outliers=[0, 35])  # fmt: skip
    return page, colours, names


def open_page(browser, page):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page.as_uri())
    WebDriverWait(browser, 20).until(lambda b: b.execute_script("return window.explorer.ready"))
    return browser.find_element("id", "canvas")


def move_to_point(browser, canvas, index):
    from selenium.webdriver import ActionChains

    x, y = browser.execute_script(f"return window.explorer.toScreen({index})")
    size = canvas.size  # offsets are from the canvas centre
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(x - size["width"] / 2), int(y - size["height"] / 2)
    ).perform()


def test_hover_shows_the_thumbnail_class_and_index(browser, tmp_path):
    page, colours, names = grid_map(tmp_path)
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # nothing fetched from anywhere
    canvas = open_page(browser, page)
    move_to_point(browser, canvas, 14)
    assert browser.execute_script("return window.explorer.hovered") == 14
    tooltip = browser.find_element("id", "tooltip")
    assert tooltip.is_displayed()
    assert browser.find_element("id", "tooltipText").text == f"{names[14 % 3]} · index 14"
    pixel = browser.execute_script(
        "return Array.from(document.getElementById('tooltipImage').getContext('2d')"
        ".getImageData(48, 48, 1, 1).data)"
    )
    np.testing.assert_allclose(pixel[:3], colours[14], atol=12)  # the image's own colour (JPEG)
    browser.save_screenshot(str(tmp_path / "hover.png"))
    assert (tmp_path / "hover.png").stat().st_size > 10_000


def test_names_from_files_stay_text(browser, tmp_path):
    page, _, names = grid_map(tmp_path)
    canvas = open_page(browser, page)
    shown = [e.text for e in browser.find_elements("css selector", "#legend .class-name")]
    assert shown == names
    assert browser.execute_script("return document.querySelectorAll('#panel img').length") == 0
    move_to_point(browser, canvas, 1)  # a point of the class named like an <img> tag
    assert browser.find_element("id", "tooltipText").text == f"{XSS_NAMES[0]} · index 1"
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.title == f"medmap explorer · test {XSS_NAMES[0]}"
    outliers = browser.find_elements("css selector", "#outliers .thumb")
    assert [o.text for o in outliers] == ["#0 basophil", f"#35 {names[35 % 3]}"]


def test_zoom_pan_hide_and_select_a_region(browser, tmp_path):
    from selenium.webdriver import ActionChains, Keys
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    page, _, _ = grid_map(tmp_path)
    canvas = open_page(browser, page)
    before = browser.execute_script("return window.explorer.toScreen(0)")
    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, -300).perform()
    zoomed = browser.execute_script("return window.explorer.toScreen(0)")
    assert zoomed != before
    browser.execute_script("document.getElementById('canvas').dispatchEvent(new Event('dblclick'))")
    # shift+drag a rectangle around the points of the top-left 2x2 corner (indices 0, 1, 6, 7)
    corners = [browser.execute_script(f"return window.explorer.toScreen({i})") for i in (0, 7)]
    (x0, y0), (x1, y1) = corners
    left, right = min(x0, x1) - 10, max(x0, x1) + 10
    top, bottom = min(y0, y1) - 10, max(y0, y1) + 10
    size = canvas.size
    centre_x, centre_y = size["width"] / 2, size["height"] / 2
    (ActionChains(browser).key_down(Keys.SHIFT)
        .move_to_element_with_offset(canvas, int(left - centre_x), int(top - centre_y))
        .click_and_hold()
        .move_to_element_with_offset(canvas, int(right - centre_x), int(bottom - centre_y))
        .release().key_up(Keys.SHIFT).perform())  # fmt: skip
    assert sorted(browser.execute_script("return window.explorer.selected")) == [0, 1, 6, 7]
    assert len(browser.find_elements("css selector", "#selection .thumb")) == 4
    browser.find_elements("css selector", "#legend .legend-item")[0].click()  # hide class 0
    move_to_point(browser, canvas, 0)
    assert browser.execute_script("return window.explorer.hovered") != 0


@pytest.mark.data
def test_explore_py_on_a_real_run_writes_one_offline_page_and_outliers(tmp_path):
    require_data("medmnist", "breastmnist.npz")
    run = tmp_path / "run"
    result = cli("experiment=smoke", "logger=none", "dataset=breastmnist", f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-2000:]
    with (run / "outliers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 512 and rows[0]["rank"] == "1"
    distances = [float(r["distance_to_15th_neighbour"]) for r in rows]
    assert distances == sorted(distances, reverse=True)
    env = {**os.environ, "DATA_DIR": str(data_dir())}  # the images are reloaded from the data
    explored = subprocess.run([sys.executable, "explore.py", f"run={run}"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert explored.returncode == 0, explored.stderr[-2000:]
    html = (run / "explorer.html").read_text()
    assert "malignant" in html and "data:image/jpeg;base64," in html
    missing = subprocess.run([sys.executable, "explore.py", f"run={tmp_path / 'nope'}"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert missing.returncode == 1 and "holds no embedding.npy" in missing.stderr
    assert "Traceback" not in missing.stderr
