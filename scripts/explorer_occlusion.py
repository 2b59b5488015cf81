"""How many points the explorer hides in its default view, measured in the page itself
(headless Chromium), with and without its "show covered points" pass:

    python scripts/explorer_occlusion.py <run dir or explorer.html> [--windows 1200x800,...]

Writes <run>/explorer.html if missing; prints one JSON line per window and setting. For each
window size it reads the page's own ``window.explorer.visiblePoints()`` (the points are drawn
once more, recording which point each canvas pixel shows last): a point is *fully hidden*
when no pixel shows it. It also counts the listed label-error suspects that are hidden. With the
pass on, a point's own pixel lies at most the page's SPREAD_REACH pixels beyond its square."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medmap.reporting.browser import console_errors, headless_chromium, open_explorer, set_control
from medmap.reporting.explorer import explore_run

MEASURE = """
const seen = window.explorer.visiblePoints();
const suspects = (data.suspects || []).map(s => s.index);
let hiddenPoints = 0;
for (let i = 0; i < seen.length; i++) hiddenPoints += !seen[i];
return {points: seen.length, hidden: hiddenPoints,
        hidden_pct: +(100 * window.explorer.hiddenShare()).toFixed(3),
        suspects: suspects.length, suspects_hidden: suspects.filter(i => !seen[i]).length,
        canvas: [canvas.width, canvas.height]};
"""


def measure(page: Path, width: int, height: int) -> list[dict]:
    browser = headless_chromium(width, height)
    try:
        open_explorer(browser, page, thumbnails=False)
        rows = []
        for spread in (False, True):
            set_control(browser, "spreadPoints", spread)
            row = browser.execute_script(MEASURE)
            rows.append({"window": f"{width}x{height}", "show_covered": spread, **row})
        if errors := console_errors(browser):
            raise RuntimeError(f"the page logged errors: {errors}")
        return rows
    finally:
        browser.quit()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a run directory or an explorer page")
    parser.add_argument("--windows", default="1200x800,1400x900,400x800")
    args = parser.parse_args()
    page = args.run if args.run.suffix == ".html" else args.run / "explorer.html"
    if not page.exists():
        explore_run(args.run)
    for window in args.windows.split(","):
        width, height = map(int, window.split("x"))
        for row in measure(page, width, height):
            print(json.dumps(row))


if __name__ == "__main__":
    main()
