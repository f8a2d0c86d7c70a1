"""Hugging Face Space entry point of the GRAFT demo: the same app as `graft demo`.

Settings (Space variables): MODEL_ID (model directory or Hub id), GALLERY (gallery folder, or a Hub dataset repo
holding one, written by `graft demo-gallery`), TEMPLATES ('satellite' or 'none'), PORT.
"""

import logging
import os

from graft_hf.demo import DemoConfig, build_demo_from_config, launch_demo

config = DemoConfig(
    model=os.environ.get("MODEL_ID", "graft-hf/graft-naip-vitb16"),
    gallery=os.environ.get("GALLERY", os.path.join(os.path.dirname(os.path.abspath(__file__)), "gallery")),
    templates=os.environ.get("TEMPLATES", "satellite"),
    host="0.0.0.0",
    port=int(os.environ.get("PORT", "7860")),
)

logging.basicConfig(level=logging.INFO)
demo = build_demo_from_config(config)

if __name__ == "__main__":
    launch_demo(demo, host=config.host, port=config.port, limits=config.limits)
