"""Write a run's interactive map as one offline HTML file: python explore.py run=<run dir>"""

import logging
import sys
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from medmap.errors import UserFacingError
from medmap.explorer import explore_run

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    defaults = OmegaConf.load(Path(__file__).parent / "conf" / "explore.yaml")
    try:
        cfg = OmegaConf.merge(defaults, OmegaConf.from_cli())
        page = explore_run(
            cfg.run,
            cfg.output,
            colour_by=cfg.colour_by,
            thumbnail_size=cfg.thumbnail_size,
            jpeg_quality=cfg.jpeg_quality,
            listed=cfg.listed,
        )
    except MissingMandatoryValue:
        sys.exit("Usage: python explore.py run=<run dir> [output=<file.html>] [colour_by=<column>]")
    except (UserFacingError, FileNotFoundError) as error:
        sys.exit(f"ERROR: {error}")
    print(f"Wrote {page} ({page.stat().st_size / 1e6:.1f} MB): open it in a browser.")
