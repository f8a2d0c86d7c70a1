"""The photo table: distinct photos sharing a geotag are kept, duplicates are decided by id and image hash, blank ids
are invalid, and the ``image`` column only ever brings images into the shards (relative paths from the table's
folder; a system file or a non-image is refused and counted).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from graft_hf.pairs.config import PhotoColumns
from graft_hf.pairs.photos import load_photos, opens_as_image


def _jpeg(seed: int, size: int = 16) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def _table(path: Path, **columns: list) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_photos_sharing_a_geotag_are_all_kept(tmp_path: Path) -> None:
    """Real collections have many distinct photos taken at one spot (a viewpoint, a landmark)."""
    path = _table(
        tmp_path / "photos.parquet",
        photo_id=["a", "b", "c", "a"],
        lat=[47.02, 47.02, 47.02, 47.03],
        lon=[-99.15, -99.15, -99.15, -99.16],
        image=[_jpeg(0), _jpeg(1), _jpeg(2), _jpeg(3)],
    )
    photos = load_photos(path)
    assert photos.photo_id == ["a", "b", "c"]
    assert dict(photos.dropped) == {"duplicate_photo_id": 1}


def test_duplicates_by_image_hash_where_the_table_has_one(tmp_path: Path) -> None:
    """The filtering stage's perceptual hash: an equal hash (any case, padding) is the same image re-uploaded."""
    path = _table(
        tmp_path / "photos.parquet",
        photo_id=["a", "b", "c", "d", "e"],
        lat=[47.02, 47.021, 47.02, 47.03, 47.04],
        lon=[-99.15, -99.151, -99.15, -99.16, -99.17],
        image_hash=["ffd8a1b2c3d4e5f6", " FFD8A1B2C3D4E5F6 ", "0123456789abcdef", None, ""],
        outdoor_score=[0.9, 0.8, 0.7, 0.6, 0.5],
    )
    photos = load_photos(path)
    assert photos.photo_id == ["a", "c", "d", "e"], "rows without a hash are never duplicates of each other"
    assert dict(photos.dropped) == {"duplicate_image_hash": 1}
    renamed = _table(tmp_path / "renamed.parquet", id=["a", "b"], lat=[1.0, 2.0], lon=[1.0, 2.0], ph=["ab", "ab"])
    assert load_photos(renamed, PhotoColumns(image_hash="ph")).photo_id == ["a"]


def test_blank_photo_ids_are_invalid(tmp_path: Path) -> None:
    (tmp_path / "photos.csv").write_text("photo_id,lat,lon\n,47.0,-99.1\n  ,47.1,-99.1\nok,47.2,-99.1\n")
    photos = load_photos(tmp_path / "photos.csv")
    assert photos.photo_id == ["ok"] and dict(photos.dropped) == {"invalid_photo_id": 2}


def test_image_column_accepts_only_images(tmp_path: Path) -> None:
    """A table naming a system file (or any non-image) never gets it copied into the shards."""
    table_dir = tmp_path / "collection"
    (table_dir / "img").mkdir(parents=True)
    (table_dir / "img" / "a.jpg").write_bytes(_jpeg(0))
    (table_dir / "img" / "fake.jpg").write_text("#!/bin/sh\necho not an image\n")
    system_file = Path("/etc/passwd") if Path("/etc/passwd").is_file() else Path(os.__file__)
    rows = [
        ("a", "img/a.jpg"),  # relative to the table's folder
        ("b", str(table_dir / "img" / "a.jpg")),  # absolute
        ("c", str(system_file)),
        ("d", "img/fake.jpg"),
        ("e", "../collection/img/missing.jpg"),
        ("f", str(Path(__file__).resolve())),
    ]
    lines = ["photo_id,lat,lon,image"] + [f"{pid},47.0{i},-99.1,{image}" for i, (pid, image) in enumerate(rows)]
    (table_dir / "photos.csv").write_text("\n".join(lines) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)  # relative paths must not depend on where the build runs
    try:
        photos = load_photos(Path("..") / "collection" / "photos.csv")
    finally:
        os.chdir(cwd)
    assert photos.photo_id == ["a", "b"]
    assert Path(photos.image_path[0]).resolve() == (table_dir / "img" / "a.jpg").resolve()
    assert dict(photos.dropped) == {"not_an_image": 3, "missing_image_file": 1}

    # Bytes in the table are held to the same rule.
    path = _table(tmp_path / "bytes.parquet", photo_id=["x", "y"], lat=[1.0, 2.0], lon=[1.0, 2.0],
                  image=[_jpeg(1), b"\x7fELF not an image"])  # fmt: skip
    photos = load_photos(path)
    assert photos.photo_id == ["x"] and dict(photos.dropped) == {"not_an_image": 1}


def test_opens_as_image() -> None:
    assert opens_as_image(_jpeg(0))
    assert not opens_as_image(b"")
    assert not opens_as_image(b"GIF89a-but-not-really")
    assert not opens_as_image(Path(__file__))


@pytest.mark.parametrize("value", ["", None])
def test_missing_image_value_keeps_the_photo_without_one(tmp_path: Path, value: str | None) -> None:
    path = _table(tmp_path / "p.parquet", photo_id=["a"], lat=[1.0], lon=[1.0], image=pa.array([value], pa.string()))
    photos = load_photos(path)
    assert photos.photo_id == ["a"] and photos.image_path == [None] and photos.image_bytes == [None]
