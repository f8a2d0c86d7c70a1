"""Hugging Face Space of the GRAFT demo (published with `graft push --space`).

Settings: Space variables MODEL_ID (GRAFT model repo or registered name), GALLERY (gallery dataset repo or folder)
and TEMPLATES ('satellite' or 'none') override space_config.json. graft-hf is imported from ./graft_hf.
"""

import logging
from pathlib import Path

from graft_hf.demo.space import build_space_demo, serve_space

logging.basicConfig(level=logging.INFO)
demo = build_space_demo(Path(__file__).resolve().parent)

if __name__ == "__main__":
    serve_space(demo)
