"""The dataset card of a pair build, rendered from ``hub_cards/pairs_dataset_card.md``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from string import Template

from graft_hf.resources import hub_card_template

__all__ = ["render_card", "template_path", "write_card"]

_SENSOR_NAMES = {"naip": "NAIP", "sentinel2": "Sentinel-2"}
_SCENE_RULES = {
    "newest": "Each tile uses the newest acquisition covering its centre.",
    "closest_time": (
        "Each tile uses the acquisition closest in time to its photos' capture times among scenes with cloud cover "
        "below {cloud}%."
    ),
}


def template_path() -> Path:
    """Location of the pairs_dataset_card.md template (see `graft_hf.resources.hub_card_template`)."""
    return hub_card_template("pairs_dataset_card.md")


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) if counts else "none"


def render_card(report: dict) -> str:
    """Render the card text from a build report (see ``builder._report``).

    Args:
        report: The build report dict.

    Returns:
        Markdown with the YAML header whose ``configs:`` block points at ``data/train-*.parquet``.
    """
    config = report["config"]
    rule = config["scene_choice"]
    if rule == "auto":
        rule = "newest" if report["sensor"] == "naip" else "closest_time"
    licences = report["licenses"]
    licence_table = "\n".join(["| licence | photos |", "|---|---|"] + [f"| {k} | {v} |" for k, v in licences.items()])
    sensor_name = _SENSOR_NAMES[report["sensor"]]
    values = {
        "pretty_name": f"GRAFT {sensor_name} ground-satellite pairs",
        "size_category": _size_category(report["tiles"]["kept"]),
        "sensor_name": sensor_name,
        "crop_size": report["crop_size"],
        "footprint_size": report["footprint_size"],
        "half_footprint": report["footprint_size"] // 2,
        "gsd": ", ".join(f"{g:g}" for g in report["gsd"]),
        "tiles_kept": report["tiles"]["kept"],
        "tiles_sampled": report["tiles"]["sampled"],
        "photos_kept": report["photos"]["kept"],
        "photos_read": report["photos"]["read"],
        "photo_rows": report["photo_rows"],
        "shards": report["shards"],
        "years": ", ".join(report["acquisition_years"]),
        "seed": report["seed"],
        "photo_drops": _counts(report["photos"]["dropped"]),
        "tile_drops": _counts(report["tiles"]["dropped"]),
        "max_photos": config["max_photos_per_tile"],
        "scene_rule": _SCENE_RULES[rule].format(cloud=config["max_cloud_cover"]),
        "licence_table": licence_table,
        "report_json": json.dumps(report, indent=2),
    }
    return Template(template_path().read_text()).substitute(values)


def write_card(output_dir: str | os.PathLike, report: dict) -> Path:
    """Write ``README.md`` into the build folder (atomically).

    Args:
        output_dir: The build folder.
        report: The build report.

    Returns:
        Path of the card.
    """
    path = Path(output_dir) / "README.md"
    tmp = path.with_name(f".README.md.tmp-{os.getpid()}")
    tmp.write_text(render_card(report))
    os.replace(tmp, path)
    return path
