"""The explorer's views as PNG screenshots for the docs, taken in headless Chromium from a
run's explorer page (written if missing):

    python scripts/explorer_screenshots.py <run dir> [--output docs/images]

Writes explorer-map.png (the default view), explorer-images-on-map.png, explorer-selection.png
(a lasso-shaped selection: its grid, class breakdown, the rest greyed), explorer-density.png
(small translucent points: overlaps read darker), explorer-duplicates.png (the panel of
near-duplicate pairs with their classes, splits and flags) and explorer-phone.png (400 px
wide)."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image

from medmap.reporting.browser import (
    console_errors,
    headless_chromium,
    next_frame,
    open_explorer,
    set_control,
)
from medmap.reporting.explorer import explore_run

# The points inside an ellipse around the middle of the map, as a lasso would take them.
SELECT_ELLIPSE = """
const rect = canvas.getBoundingClientRect(), inside = [];
for (let i = 0; i < n; i++) {
  const [x, y] = window.explorer.toScreen(i);
  const dx = (x - 0.45 * rect.width) / (0.12 * rect.width);
  const dy = (y - 0.5 * rect.height) / (0.08 * rect.height);
  if (dx * dx + dy * dy < 1) inside.push(i);
}
window.explorer.showSelection(inside);
"""


def save(png: bytes, path: Path) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.save(path, optimize=True)
    print(f"{path} ({path.stat().st_size // 1024} KB)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run", type=Path)
    parser.add_argument("--output", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    page = args.run / "explorer.html"
    if not page.exists():
        explore_run(args.run)
    args.output.mkdir(parents=True, exist_ok=True)
    browser = headless_chromium(1400, 900)
    try:
        open_explorer(browser, page)
        save(browser.get_screenshot_as_png(), args.output / "explorer-map.png")
        set_control(browser, "imagesOnMap", True)
        save(browser.get_screenshot_as_png(), args.output / "explorer-images-on-map.png")
        set_control(browser, "imagesOnMap", False)
        set_control(browser, "pointSize", 2)
        set_control(browser, "pointOpacity", 0.15)
        density = browser.find_element("id", "map").screenshot_as_png
        save(density, args.output / "explorer-density.png")
        set_control(browser, "pointSize", 1)
        set_control(browser, "pointOpacity", 1)
        browser.execute_script("document.getElementById('viewSection').open = false")
        browser.execute_script(SELECT_ELLIPSE)
        next_frame(browser)
        save(browser.get_screenshot_as_png(), args.output / "explorer-selection.png")
        browser.execute_script("window.explorer.showSelection([])")
        section = browser.find_element("id", "duplicatesSection")
        browser.execute_script("arguments[0].scrollIntoView()", section)
        save(section.screenshot_as_png, args.output / "explorer-duplicates.png")
        browser.set_window_size(400, 800)
        browser.execute_script(
            "window.scrollTo(0, 0); document.getElementById('panel').scrollTop = 0"
        )
        next_frame(browser)
        save(browser.get_screenshot_as_png(), args.output / "explorer-phone.png")
        if errors := console_errors(browser):
            raise RuntimeError(f"the page logged errors: {errors}")
    finally:
        browser.quit()


if __name__ == "__main__":
    main()
