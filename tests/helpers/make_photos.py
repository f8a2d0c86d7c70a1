"""Seeded generator of synthetic geotagged ground-photo tables for the pair-builder tests.

Photos are placed in a raster CRS (uniformly inside given bounds plus an optional dense cluster) and converted to
WGS84, so they land where the test wants them on real rasters. Nothing here is committed data: tests call
:func:`make_photo_table` into a temporary folder. Run it from the repository root to write one by hand::

    python -m tests.helpers.make_photos out.csv EPSG:26914 486000 5205700 490400 5209100 200
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LICENSES = ("CC-BY-2.0", "CC-BY-SA-2.0", "CC0-1.0")


@dataclass
class PhotoSpec:
    """What a generated table holds, for assertions."""

    path: Path
    rows: int
    valid_ids: list[str] = field(default_factory=list)
    expected_drops: dict[str, int] = field(default_factory=dict)


def _jpeg(rng: np.random.Generator) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_photo_table(
    path: str | Path,
    crs: str,
    bounds: tuple[float, float, float, float],
    num_photos: int,
    seed: int = 0,
    *,
    cluster: tuple[float, float, float, int] | None = None,
    times: tuple[str, str] = ("2015-01-01", "2021-01-01"),
    bad_rows: bool = False,
    outside: int = 0,
    extra: list[tuple[float, float]] | None = None,
    with_images: bool = True,
    id_prefix: str = "p",
) -> PhotoSpec:
    """Write a CSV photo table.

    Args:
        path: Output CSV path (images go to ``<stem>_images/`` next to it).
        crs: CRS of ``bounds`` and ``cluster``.
        bounds: ``(xmin, ymin, xmax, ymax)`` in ``crs`` where photos are drawn uniformly.
        num_photos: Uniform photos.
        seed: Seed.
        cluster: ``(x, y, radius, count)``: extra photos in a square of half-side ``radius`` around ``(x, y)``.
        times: Capture times are drawn uniformly between these dates.
        bad_rows: Append one row per skip reason (duplicate id, empty id, invalid coordinates, missing image file,
            a file that is not an image) and one distinct photo taken where another was (kept: photos may share a
            geotag).
        outside: Photos placed far away from ``bounds`` (outside every raster).
        extra: Extra photos at these ``(x, y)`` in ``crs`` (ids follow the uniform and cluster photos).
        with_images: Write a tiny JPEG per photo and reference it in the ``image`` column.
        id_prefix: Prefix of the photo ids.

    Returns:
        The spec of the table.
    """
    from rasterio.crs import CRS
    from rasterio.warp import transform

    rng = np.random.default_rng(seed)
    path = Path(path)
    images = path.parent / f"{path.stem}_images"
    images.mkdir(parents=True, exist_ok=True)
    xmin, ymin, xmax, ymax = bounds
    xs = list(rng.uniform(xmin, xmax, num_photos))
    ys = list(rng.uniform(ymin, ymax, num_photos))
    if cluster is not None:
        cx, cy, radius, count = cluster
        xs += list(rng.uniform(cx - radius, cx + radius, count))
        ys += list(rng.uniform(cy - radius, cy + radius, count))
    for x, y in extra or []:
        xs.append(x)
        ys.append(y)
    lons, lats = transform(CRS.from_user_input(crs), CRS.from_epsg(4326), xs, ys)
    t0, t1 = (np.datetime64(t, "s").astype(np.int64) for t in times)
    rows = []
    for i, (lon, lat) in enumerate(zip(lons, lats, strict=True)):
        photo_id = f"{id_prefix}{i:05d}"
        image = ""
        if with_images:
            (images / f"{photo_id}.jpg").write_bytes(_jpeg(rng))
            image = f"{images.name}/{photo_id}.jpg"
        when = np.datetime64(int(rng.integers(t0, t1)), "s").astype(str)
        rows.append(
            {
                "photo_id": photo_id,
                "latitude": repr(lat),
                "longitude": repr(lon),
                "date_taken": when,
                "image": image,
                "title": f"photo {i}",
                "tags": "field prairie" if i % 2 else "",
                "license": LICENSES[i % len(LICENSES)],
                "owner": f"user{i % 7}",
            }
        )
    spec = PhotoSpec(path=path, rows=0, valid_ids=[r["photo_id"] for r in rows])
    for j in range(outside):
        rows.append(
            {**rows[j % len(rows)], "photo_id": f"far{j}", "latitude": "-33.9", "longitude": repr(18.4 + j * 1e-3)}
        )
        spec.valid_ids.append(f"far{j}")
    spec.expected_drops["outside_rasters"] = outside
    if bad_rows:
        rows.append({**rows[1], "latitude": repr(float(rows[1]["latitude"]) + 1e-6)})  # same id
        same_spot = {**rows[2], "photo_id": "samespot", "title": "another photo taken there"}
        if with_images:
            (images / "samespot.jpg").write_bytes(_jpeg(rng))
            same_spot["image"] = f"{images.name}/samespot.jpg"
        rows.append(same_spot)  # a distinct photo at the same coordinates: kept
        spec.valid_ids.append("samespot")
        rows.append({**rows[3], "photo_id": "badcoord", "latitude": "123.0"})
        rows.append({**rows[3], "photo_id": ""})
        rows.append(
            {
                **rows[4],
                "photo_id": "noimage",
                "latitude": repr(float(rows[4]["latitude"]) + 2e-6),
                "image": "missing/none.jpg",
            }
        )
        drops = {"duplicate_photo_id": 1, "invalid_photo_id": 1, "invalid_coordinates": 1, "missing_image_file": 1}
        if with_images:
            (images / "notes.jpg").write_text("not an image, whatever its name says\n")
            rows.append({**rows[5], "photo_id": "notimage", "image": f"{images.name}/notes.jpg"})
            drops["not_an_image"] = 1
        spec.expected_drops.update(drops)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    spec.rows = len(rows)
    return spec


if __name__ == "__main__":
    out, crs_arg, *numbers = sys.argv[1:]
    x0, y0, x1, y1, n = (float(v) for v in numbers)
    print(make_photo_table(out, crs_arg, (x0, y0, x1, y1), int(n)))
