"""Hugging Face Space entry point of the GRAFT demo: the same app as `graft demo`.

Settings (Space variables): MODEL_ID (model directory or Hub id), GALLERY (gallery folder, or a Hub dataset repo
holding one, written by `graft demo-gallery`), TEMPLATES ('satellite' or 'none').
"""

import logging
import os

from graft_hf.demo import DemoLimits, build_demo, launch_demo

MODEL_ID = os.environ.get("MODEL_ID", "graft-hf/graft-naip-vitb16")
GALLERY = os.environ.get("GALLERY", os.path.join(os.path.dirname(os.path.abspath(__file__)), "gallery"))
TEMPLATES = os.environ.get("TEMPLATES", "satellite")

logging.basicConfig(level=logging.INFO)
limits = DemoLimits()
demo = build_demo(MODEL_ID, GALLERY, limits=limits, templates=None if TEMPLATES.lower() == "none" else TEMPLATES)

if __name__ == "__main__":
    launch_demo(demo, host="0.0.0.0", port=int(os.environ.get("PORT", "7860")), limits=limits)
