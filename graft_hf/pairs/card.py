"""Dataset cards of pair datasets: the one place a pairs ``README.md`` (and a build's ``LICENSE.md``) is made.

Every pairs card (a ``graft pairs build`` folder, the quickstart's simulated pairs, the benchmarks' shards) is a
:class:`huggingface_hub.DatasetCard` rendered with :meth:`~huggingface_hub.DatasetCard.from_template` from a Jinja
template, with a :class:`huggingface_hub.DatasetCardData` header built by :func:`pairs_card_data`, which always
carries the ``configs:`` block that lets ``datasets.load_dataset(folder)`` find ``data/train-*.parquet``, the
``task_categories`` and the ``dataset_info`` features of the shard schema (photo images typed as ``image``).

Licences: a build's card names one Hub licence id only when every kept photo has the same licence, that licence
is a Hub id, and the imagery is public domain (NAIP); otherwise ``license: other`` with ``license_name`` and
``license_link`` pointing at ``LICENSE.md``, which lists the imagery's licence and the kept photos' licences
(each photo's own licence and owner travel in ``photos.license`` / ``photos.owner``).
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
    "LICENSE_FILE",
    "PAIRS_CONFIGS",
    "PAIRS_TASK_CATEGORIES",
    "dataset_licence",
    "pairs_card_data",
    "pairs_dataset_card",
    "render_card",
    "render_licence_file",
    "render_summary_card",
    "template_path",
    "write_card",
]

#: The ``configs:`` entry of every pairs dataset: one ``train`` split over the parquet shards.
PAIRS_CONFIGS: list[dict] = [
    {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}
]
#: What models trained on pairs do: zero-shot classification of satellite images, image embeddings.
PAIRS_TASK_CATEGORIES: list[str] = ["zero-shot-image-classification", "image-feature-extraction"]
#: The licence file of a build folder, linked from the card when ``license: other``.
LICENSE_FILE = "LICENSE.md"
_BUILD_TAGS = ("geospatial", "remote-sensing", "satellite-imagery", "ground-images", "graft")
_SCENE_RULES = {
    "newest": "Each tile uses the newest acquisition covering its centre.",
    "closest_time": (
        "Each tile uses the clear acquisition closest in time to its photos: the one with the smallest mean "
        "absolute gap to the capture times of the tile's kept photos (the newest when none has a time)."
    ),
}
#: Imagery licences by sensor; ``None`` where the imagery adds no condition (US public domain).
_IMAGERY_LICENCES = {
    "naip": ("NAIP imagery, USDA Farm Production and Conservation Business Center: US public domain.", None),
    "sentinel2": (
        "Contains modified Copernicus Sentinel data: free and open under the Copernicus Sentinel data licence, "
        "attribution required (https://sentinels.copernicus.eu/documents/247904/690755/Sentinel_Data_Legal_Notice).",
        "copernicus-sentinel-data",
    ),
}
#: Creative Commons and public-domain licence ids the Hub knows (its licence list), for photo licences.
_HUB_LICENCES = frozenset(
    {
        "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0",
        "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0",
        "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "pddl", "odc-by", "odbl",
    }
)  # fmt: skip
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


def _dataset_info(num_rows: int | None, data_bytes: int | None, download_size: int | None) -> dict:
    """The ``dataset_info`` block: the pairs features, and the train split's size when known."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict

    from .schema import pairs_features

    splits = None
    if num_rows is not None:
        splits = SplitDict()
        splits.add(SplitInfo(name="train", num_bytes=data_bytes or 0, num_examples=num_rows))
    info = DatasetInfo(features=pairs_features(), splits=splits, download_size=download_size, dataset_size=data_bytes)
    holder = DatasetCardData()
    DatasetInfosDict({"default": info}).to_dataset_card_data(holder)
    return holder["dataset_info"]


def pairs_card_data(
    *,
    tags: Sequence[str],
    license: str | None = None,
    license_name: str | None = None,
    license_link: str | None = None,
    pretty_name: str | None = None,
    size_category: str | None = None,
    num_rows: int | None = None,
    data_bytes: int | None = None,
    download_size: int | None = None,
) -> DatasetCardData:
    """The YAML header of a pairs dataset card: ``configs:`` (what ``load_dataset`` needs), ``task_categories`` and
    ``dataset_info`` (the shard features; the split's size when given).

    Args:
        tags: Hub tags.
        license: Licence id (``"other"`` for mixed licences), or ``None``.
        license_name: Name of an ``other`` licence (a slug).
        license_link: Link to an ``other`` licence's text (a URL or a file of the repo).
        pretty_name: Display name on the Hub.
        size_category: Hub size category (``"n<1K"``, ...).
        num_rows: Tiles in the train split.
        data_bytes: Uncompressed bytes of the train split.
        download_size: Bytes of the parquet shards.

    Raises:
        ValueError: ``license="other"`` without ``license_name`` and ``license_link``.
    """
    if license == "other" and not (license_name and license_link):
        raise ValueError("license='other' needs license_name and license_link (the Hub shows them as the licence)")
    return DatasetCardData(
        license=license,
        license_name=license_name,
        license_link=license_link,
        pretty_name=pretty_name,
        tags=list(tags),
        task_categories=PAIRS_TASK_CATEGORIES,
        size_categories=[size_category] if size_category else None,
        configs=PAIRS_CONFIGS,
        dataset_info=_dataset_info(num_rows, data_bytes, download_size),
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


def _hub_licence(name: str) -> str | None:
    """The Hub licence id a photo licence string names (``"CC-BY-2.0"`` -> ``"cc-by-2.0"``), or ``None``."""
    slug = "-".join(name.strip().lower().replace("_", " ").split())
    return slug if slug in _HUB_LICENCES else None


def dataset_licence(report: dict) -> tuple[str, str | None, str | None]:
    """The card's ``(license, license_name, license_link)`` for a build.

    One Hub licence id when every kept photo carries the same Hub licence and the imagery is public domain (NAIP);
    otherwise ``"other"``, named after what it combines and linked to :data:`LICENSE_FILE`.

    Args:
        report: The build report.
    """
    photo_licences = set(report["licenses"])
    _, imagery = _IMAGERY_LICENCES.get(report["sensor"], ("", "imagery-licence"))
    single = _hub_licence(next(iter(photo_licences))) if len(photo_licences) == 1 else None
    if single is not None and imagery is None:
        return single, None, None
    parts = [imagery] if imagery else []
    parts.append(single or "per-photo-licences")
    return "other", "-and-".join(parts), LICENSE_FILE


def _licence_table(licences: dict[str, int]) -> str:
    rows = [
        f"| {name} | {_hub_licence(name) or 'not a Hub licence id'} | {count} |" for name, count in licences.items()
    ]
    return "\n".join(["| licence | Hub id | photos |", "|---|---|---:|", *rows])


def render_licence_file(report: dict) -> str:
    """``LICENSE.md`` of a build folder: the imagery's licence and the kept photos' licences.

    Args:
        report: The build report.
    """
    imagery, _ = _IMAGERY_LICENCES.get(report["sensor"], ("The imagery keeps the licence of its source.", None))
    unknown = report["licenses"].get("unknown", 0)
    caveat = (
        f"\n{unknown} photo(s) have no licence in the source table: find out before redistributing them.\n"
        if unknown
        else ""
    )
    return (
        "# Licences of this pairs dataset\n\n"
        "This dataset combines satellite or aerial imagery with ground photos, each under its own terms.\n\n"
        f"## Imagery\n\n{imagery}\n\n"
        "## Ground photos\n\n"
        "Every photo keeps the licence and owner of its source, stored with it in `photos.license` and "
        "`photos.owner`; respect them (attribution, share-alike, non-commercial terms) when you redistribute "
        "photos or derived data. Kept photos by licence:\n\n"
        f"{_licence_table(report['licenses'])}\n{caveat}"
    )


def _resolution(report: dict) -> str:
    """How the crops' pixels relate to the sources'."""
    gsd = ", ".join(f"{g:g}" for g in report["gsd"])
    source = ", ".join(f"{g:g}" for g in report.get("source_gsd", report["gsd"]))
    if report.get("config", {}).get("native_gsd", True) or "source_gsd" not in report:
        return f"Crops keep each scene's own pixel grid ({gsd} m/px)."
    return (
        f"Every crop is warped to {gsd} m/px (the sensor's training GSD, as in the paper) from scenes at {source} m/px, "
        f"with GDAL resampling `{report.get('resampling', 'auto')}` (`auto`: area average when downsampling, "
        "bilinear otherwise); the stored `transform` and `gsd` describe the output grid and `source_gsd` the scene's "
        "pixel size."
    )


def _placement(report: dict) -> str:
    placement = report.get("tile_placement", {"mode": "photos"})
    if placement.get("mode") != "random":
        return (
            "Tiles are centred on photo geotags: photos are visited in a seeded random order, an unassigned photo "
            "becomes a tile centre and every photo inside the tile's footprint is assigned to it."
        )
    rejected = _counts(placement.get("rejected", {}))
    return (
        "**Random-tile ablation (paper section 4.4):** tile centres are drawn uniformly over the clear scenes instead "
        f"of on photo geotags; {placement['placed']} of {placement['target']} wanted tiles placed in "
        f"{placement['drawn']} draws (rejected: {rejected}). A draw is rejected inside an earlier tile's footprint or "
        "when no photo lies in its footprint."
    )


def _scenes(report: dict) -> str:
    scenes = report["scenes"]
    if not isinstance(scenes, dict):
        return f"{scenes} scenes."
    unknown = "used as clear" if scenes.get("no_cloud_cover_used") else "not used"
    return (
        f"{scenes['usable']} of {scenes['listed']} catalogued scenes usable (skipped: {_counts(scenes['skipped'])}); "
        f"{scenes['clear']} clear, {scenes['cloudy']} cloudy, {scenes['no_cloud_cover']} without a cloud cover value "
        f"({unknown}). Failed reads by raster: {_counts(scenes['read_failed'])}."
    )


def _build_values(report: dict) -> dict[str, object]:
    """Template values of a build card (everything but the header); tolerant of reports of older builds."""
    config = report["config"]
    rule = config["scene_choice"]
    if rule == "auto":
        rule = "newest" if report["sensor"] == "naip" else "closest_time"
    return {
        "sensor_name": get_sensor(report["sensor"]).display_name,
        "crop_size": report["crop_size"],
        "footprint_size": report["footprint_size"],
        "half_footprint": report["footprint_size"] // 2,
        "gsd": ", ".join(f"{g:g}" for g in report["gsd"]),
        "resolution": _resolution(report),
        "placement": _placement(report),
        "scenes": _scenes(report),
        "tiles_kept": report["tiles"]["kept"],
        "tiles_sampled": report["tiles"]["sampled"],
        "photos_kept": report["photos"]["kept"],
        "photos_read": report["photos"]["read"],
        "photo_rows": report["photo_rows"],
        "photo_images": _counts(report.get("photo_images_not_stored", {})),
        "shards": report["shards"],
        "years": ", ".join(report["acquisition_years"]),
        "seed": report["seed"],
        "photo_drops": _counts(report["photos"]["dropped"]),
        "tile_drops": _counts(report["tiles"]["dropped"]),
        "max_photos": config["max_photos_per_tile"],
        "scene_rule": _SCENE_RULES[rule],
        "max_cloud": config["max_cloud_cover"],
        "imagery_licence": _IMAGERY_LICENCES.get(report["sensor"], ("",))[0],
        "licence_table": _licence_table(report["licenses"]),
        "report_json": json.dumps(report, indent=2),
        **_rgb_values(config),
    }


def render_card(report: dict) -> str:
    """Render the card text of a pair build from its build report (see ``builder._report``).

    Args:
        report: The build report dict.

    Returns:
        Markdown with the YAML header (licence block, task categories, ``dataset_info`` and the ``configs:``
        block pointing at ``data/train-*.parquet``).
    """
    license, license_name, license_link = dataset_licence(report)
    card_data = pairs_card_data(
        tags=_BUILD_TAGS,
        license=license,
        license_name=license_name,
        license_link=license_link,
        pretty_name=f"GRAFT {get_sensor(report['sensor']).display_name} ground-satellite pairs",
        size_category=_size_category(report["tiles"]["kept"]),
        num_rows=report["tiles"]["kept"],
        data_bytes=report.get("data_bytes"),
        download_size=report.get("shard_bytes"),
    )
    template = template_path().read_text(encoding="utf-8")
    return str(pairs_dataset_card(card_data, template, **_build_values(report)))


def render_summary_card(
    title: str,
    description: str,
    summary: dict,
    *,
    tags: Sequence[str],
    license: str | None = None,
    license_name: str | None = None,
    license_link: str | None = None,
) -> str:
    """A pairs dataset card made of a title, a paragraph and the dataset's JSON summary.

    Args:
        title: Heading.
        description: Markdown paragraph(s).
        summary: JSON-serialisable summary shown in a code block.
        tags: Hub tags.
        license: Licence id of the data (``"other"`` with ``license_name`` and ``license_link``).
        license_name: Name of an ``other`` licence.
        license_link: Link to an ``other`` licence's text.
    """
    card_data = pairs_card_data(tags=tags, license=license, license_name=license_name, license_link=license_link)
    values = {"title": title, "description": description, "summary_json": json.dumps(summary, indent=2)}
    return str(pairs_dataset_card(card_data, SUMMARY_TEMPLATE, **values))


def write_card(output_dir: str | os.PathLike, report: dict) -> Path:
    """Write ``README.md`` and ``LICENSE.md`` into the build folder (atomically).

    Args:
        output_dir: The build folder.
        report: The build report.

    Returns:
        Path of the card.
    """
    atomic_write(Path(output_dir) / LICENSE_FILE, render_licence_file(report))
    return atomic_write(Path(output_dir) / "README.md", render_card(report))
