"""Dataset cards of pair datasets: the one place a pairs ``README.md`` is made.

Every pairs card (a ``graft pairs build`` folder, the quickstart's simulated pairs, the benchmarks' shards) is a
:class:`huggingface_hub.DatasetCard` rendered with :meth:`~huggingface_hub.DatasetCard.from_template` from a Jinja
template, with a :class:`huggingface_hub.DatasetCardData` header built by :func:`pairs_card_data`, which always
carries the ``configs:`` block that lets ``datasets.load_dataset(folder)`` find ``data/train-*.parquet``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData

from graft_hf.io import atomic_write
from graft_hf.modeling import get_sensor
from graft_hf.resources import hub_card_template

__all__ = [
    "PAIRS_CONFIGS",
    "pairs_card_data",
    "pairs_dataset_card",
    "render_card",
    "render_summary_card",
    "template_path",
    "write_card",
]

#: The ``configs:`` entry of every pairs dataset: one ``train`` split over the parquet shards.
PAIRS_CONFIGS: list[dict] = [
    {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}
]
_BUILD_TAGS = ("geospatial", "remote-sensing", "satellite-imagery", "ground-images", "graft")
_SCENE_RULES = {
    "newest": "Each tile uses the newest acquisition covering its centre.",
    "closest_time": (
        "Each tile uses the acquisition closest in time to its photos' capture times among scenes with cloud cover "
        "below {cloud}%."
    ),
}
#: Body of a card that describes its dataset in a paragraph and a JSON summary (simulated pairs, benchmarks).
SUMMARY_TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ description }}

```json
{{ summary_json }}
```
"""


def template_path() -> Path:
    """Location of the pairs_dataset_card.md template (see `graft_hf.resources.hub_card_template`)."""
    return hub_card_template("pairs_dataset_card.md")


def pairs_card_data(
    *,
    tags: Sequence[str],
    license: str | None = None,
    pretty_name: str | None = None,
    size_category: str | None = None,
) -> DatasetCardData:
    """The YAML header of a pairs dataset card, with the ``configs:`` block ``load_dataset`` needs.

    Args:
        tags: Hub tags.
        license: Licence id (``"other"`` for mixed photo licences), or ``None``.
        pretty_name: Display name on the Hub.
        size_category: Hub size category (``"n<1K"``, ...).
    """
    return DatasetCardData(
        license=license,
        pretty_name=pretty_name,
        tags=list(tags),
        size_categories=[size_category] if size_category else None,
        configs=PAIRS_CONFIGS,
    )


def pairs_dataset_card(card_data: DatasetCardData, template: str, **values: object) -> DatasetCard:
    """Render a pairs dataset card: ``card_data`` as the YAML header, ``template`` (Jinja) filled with ``values``.

    Args:
        card_data: Header from :func:`pairs_card_data`.
        template: Jinja text with ``{{ card_data }}`` between the ``---`` lines and ``{{ name }}`` placeholders.
        **values: Template values (the header's keys are available too, e.g. ``{{ pretty_name }}``).

    Returns:
        The card; ``str(card)`` is the ``README.md`` text, ending with a newline.
    """
    card = DatasetCard.from_template(card_data, template_str=template, **values)
    card.text = card.text.rstrip("\n") + "\n"  # Jinja drops the template's final newline
    return card


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) if counts else "none"


def _rgb_values(config: dict) -> dict[str, str]:
    """How the crops' RGB was made, from the sensor registry and the build's Sentinel-2 scaling."""
    naip, sentinel2 = get_sensor("naip"), get_sensor("sentinel2")
    scale = config.get("s2_rgb_max", sentinel2.value_scale)
    offset = config.get("s2_offset", sentinel2.value_offset)
    dn = f"(DN - {offset:g})" if offset else "DN"
    aliases = sentinel2.rgb_aliases or ()
    return {
        "naip_rgb": f"{naip.rgb_bands[0] + 1}-{naip.rgb_bands[-1] + 1}",
        "s2_rgb": ", ".join(names[0] for names in aliases),
        "s2_formula": f"clip(round({dn} / {scale:g} * 255), 0, 255)",
        "s2_white": f"{scale / 10000:g}",
    }


def _build_values(report: dict) -> dict[str, object]:
    """Template values of a build card (everything but the header)."""
    config = report["config"]
    rule = config["scene_choice"]
    if rule == "auto":
        rule = "newest" if report["sensor"] == "naip" else "closest_time"
    licences = report["licenses"]
    licence_table = "\n".join(["| licence | photos |", "|---|---|"] + [f"| {k} | {v} |" for k, v in licences.items()])
    return {
        "sensor_name": get_sensor(report["sensor"]).display_name,
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
        **_rgb_values(config),
    }


def render_card(report: dict) -> str:
    """Render the card text of a pair build from its build report (see ``builder._report``).

    Args:
        report: The build report dict.

    Returns:
        Markdown with the YAML header whose ``configs:`` block points at ``data/train-*.parquet``.
    """
    card_data = pairs_card_data(
        tags=_BUILD_TAGS,
        license="other",
        pretty_name=f"GRAFT {get_sensor(report['sensor']).display_name} ground-satellite pairs",
        size_category=_size_category(report["tiles"]["kept"]),
    )
    template = template_path().read_text(encoding="utf-8")
    return str(pairs_dataset_card(card_data, template, **_build_values(report)))


def render_summary_card(title: str, description: str, summary: dict, *, tags: Sequence[str]) -> str:
    """A pairs dataset card made of a title, a paragraph and the dataset's JSON summary.

    Args:
        title: Heading.
        description: Markdown paragraph(s).
        summary: JSON-serialisable summary shown in a code block.
        tags: Hub tags.
    """
    card_data = pairs_card_data(tags=tags)
    values = {"title": title, "description": description, "summary_json": json.dumps(summary, indent=2)}
    return str(pairs_dataset_card(card_data, SUMMARY_TEMPLATE, **values))


def write_card(output_dir: str | os.PathLike, report: dict) -> Path:
    """Write ``README.md`` into the build folder (atomically).

    Args:
        output_dir: The build folder.
        report: The build report.

    Returns:
        Path of the card.
    """
    return atomic_write(Path(output_dir) / "README.md", render_card(report))
