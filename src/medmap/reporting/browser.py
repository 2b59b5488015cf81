"""Debian's headless Chromium driven by Selenium: the explorer's tests, its occlusion
measurement and its screenshots all look at the page the way a user's browser draws it."""

from __future__ import annotations

import shutil
from pathlib import Path


def chromium_missing() -> str | None:
    """Why the browser cannot start here, or None."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return None
    return ("Debian's chromium and chromium-driver are not installed (make browser installs "
            "them with apt where it can)")  # fmt: skip


def headless_chromium(width: int = 1200, height: int = 800):
    """A headless Chromium session with a window of ``width`` x ``height`` CSS pixels (the page
    gets the width and about 140 px less height) whose console messages can be read back
    (``get_log("browser")``)."""
    from selenium import webdriver

    if reason := chromium_missing():
        raise RuntimeError(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(shutil.which("chromedriver"))
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_window_size(width, height)  # the flag alone keeps at least 500 px
    return browser


def open_explorer(browser, page: Path, thumbnails: bool = True, timeout: float = 60):
    """Load an explorer page and wait until its map is drawn (and, with ``thumbnails``, every
    thumbnail sheet decoded); returns the map's canvas element."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(Path(page).resolve().as_uri())
    flag = "thumbnailsDecoded" if thumbnails else "ready"
    WebDriverWait(browser, timeout).until(
        lambda b: b.execute_script(f"return window.explorer.{flag}")
    )
    return browser.find_element("id", "canvas")


def next_frame(browser) -> None:
    """Wait until the page has drawn what it requested (drawing happens on animation frames)."""
    browser.execute_async_script(
        "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(done))"
    )


def set_control(browser, element_id: str, value) -> None:
    """Set one of the explorer's View controls as a user does (a click on a checkbox, a moved
    slider's input event; the View section is opened first), then wait for the redraw."""
    browser.execute_script("document.getElementById('viewSection').open = true")
    control = browser.find_element("id", element_id)
    if control.get_attribute("type") == "checkbox":
        if control.is_selected() != bool(value):
            control.click()
    else:
        browser.execute_script(
            "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
            "e.dispatchEvent(new Event('input'))", element_id, value)  # fmt: skip
    next_frame(browser)


def console_errors(browser) -> list[dict]:
    """The errors the page logged to its console since the last call."""
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
