"""graft pairs filter: exact duplicates by id, unreadable images, indoor photos by score, near duplicates by pHash;
the scored table lets a user re-threshold without a teacher; image paths stay valid, images are not copied; the
output is what graft pairs build reads; filtering stays optional."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from graft_hf.config import ConfigError
from graft_hf.pairs.filter import FilterConfig, filter_photos, scored_path
from tests.helpers.photo_server import photo_array


def _write(folder, name, array, quality=90) -> str:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(folder / "images" / name, format="JPEG", quality=quality)
    return f"images/{name}"


@pytest.fixture
def table(tmp_path):
    """Eight rows: six distinct photos (p3 and p5 "indoor": red-dominated), a re-encoded copy of p0, a repeated id,
    an unreadable file."""
    folder = tmp_path / "in"
    rows = []
    for i in range(6):
        array = photo_array(f"p{i}")
        if i in (3, 5):
            array = np.clip(array.astype(int) + [120, -60, -60], 0, 255).astype(np.uint8)
        rows.append({"photo_id": f"p{i}", "image": _write(folder, f"p{i}.jpg", array)})
    rows.append({"photo_id": "copy", "image": _write(folder, "copy.jpg", photo_array("p0")[::2, ::2].copy(), 60)})
    rows.append({"photo_id": "p1", "image": "images/p1.jpg"})
    (folder / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    rows.append({"photo_id": "broken", "image": "images/broken.jpg"})
    for i, row in enumerate(rows):
        row.update(lat=47.0 + i / 1000, lon=-99.1, time="2016-01-01T00:00:00", license="CC-BY-2.0", owner="o")
    pq.write_table(pa.Table.from_pylist(rows), folder / "photos.parquet")
    return folder / "photos.parquet"


def _redness(images) -> np.ndarray:
    """A user-supplied scorer: outdoor unless red dominates."""
    return np.asarray(
        [0.1 if np.asarray(i)[..., 0].mean() > 1.3 * np.asarray(i)[..., 1].mean() else 0.9 for i in images]
    )


def test_every_filter_and_the_scored_table(tmp_path, table):
    config = FilterConfig(photos=str(table), output=str(tmp_path / "out" / "filtered.parquet"), progress=False)
    report = filter_photos(config, scorer=_redness)
    assert report["removed"] == {"duplicate_photo_id": 1, "indoor": 2, "near_duplicate": 1, "unreadable_image": 1}
    kept = pq.read_table(tmp_path / "out" / "filtered.parquet").to_pylist()
    assert [r["photo_id"] for r in kept] == ["p0", "p1", "p2", "p4"]
    assert all(len(r["image_hash"]) == 16 and r["outdoor_score"] == pytest.approx(0.9) for r in kept)
    for row in kept:  # paths rewritten relative to the output folder, pointing at the same files
        assert row["image"] == f"../in/images/{row['photo_id']}.jpg"
        assert (tmp_path / "out" / row["image"]).resolve() == (tmp_path / "in" / "images" / f"{row['photo_id']}.jpg")
    scored = pq.read_table(scored_path(config.output)).to_pylist()
    assert {r["photo_id"]: r["filter_reason"] for r in scored}["copy"] == "near_duplicate"
    assert len(scored) == 9 and not list((tmp_path / "out").glob("*.jpg"))


def test_rethreshold_from_the_scored_table_needs_no_scorer_and_no_images(tmp_path, table):
    first = FilterConfig(photos=str(table), output=str(tmp_path / "a.parquet"), max_hash_distance=-1, progress=False)
    filter_photos(first, scorer=_redness)
    for image in (tmp_path / "in" / "images").glob("p*.jpg"):
        image.unlink()  # prove nothing is read again
    second = FilterConfig(photos=str(scored_path(first.output)), output=str(tmp_path / "b.parquet"),
                          outdoor_threshold=0.05, max_hash_distance=4, progress=False)  # fmt: skip
    report = filter_photos(second)
    kept = [r["photo_id"] for r in pq.read_table(tmp_path / "b.parquet").to_pylist()]
    assert kept == ["p0", "p1", "p2", "p3", "p4", "p5"]  # the indoor ones pass a lower threshold; the copy is a dup
    assert report["removed"] == {"duplicate_photo_id": 1, "near_duplicate": 1, "unreadable_image": 1}


def test_without_a_scorer_only_duplicates_go_and_the_builder_reads_the_output(tmp_path, table):
    from graft_hf.pairs.photos import load_photos

    config = FilterConfig(photos=str(table), output=str(tmp_path / "f.parquet"), progress=False)
    report = filter_photos(config)
    assert not report["outdoor_scored"] and "indoor" not in report["removed"]
    out = pq.read_table(tmp_path / "f.parquet")
    assert out.column("outdoor_score").null_count == out.num_rows
    photos = load_photos(tmp_path / "f.parquet")
    assert len(photos) == out.num_rows and all(p and p.endswith(".jpg") for p in photos.image_path)


def test_teacher_scores_with_a_tiny_clip_and_bad_configs(tmp_path, table):
    from tests.helpers.tiny_clip import save_tiny_clip

    clip = save_tiny_clip(tmp_path / "clip")
    config = FilterConfig(photos=str(table), output=str(tmp_path / "t.parquet"), teacher=str(clip), device="cpu",
                          outdoor_threshold=0.0, progress=False)  # fmt: skip
    report = filter_photos(config)
    scores = pq.read_table(tmp_path / "t.parquet").column("outdoor_score").to_numpy()
    assert report["outdoor_scored"] and ((scores > 0) & (scores < 1)).all()
    with pytest.raises(ConfigError, match="classifier"):
        FilterConfig(photos="p", output="o", teacher="t", classifier="c")
    pq.write_table(pa.table({"photo_id": ["a"], "lat": [1.0], "lon": [1.0]}), tmp_path / "noimage.parquet")
    with pytest.raises(ConfigError, match="image_column: the photo table has no image column"):
        filter_photos(FilterConfig(photos=str(tmp_path / "noimage.parquet"), output=str(tmp_path / "x.parquet")))


def test_images_as_bytes(tmp_path):
    buffers = []
    for i in range(3):
        buffer = io.BytesIO()
        Image.fromarray(photo_array("same" if i < 2 else "other")).save(buffer, format="PNG")
        buffers.append(buffer.getvalue())
    pq.write_table(pa.table({"photo_id": ["a", "b", "c"], "image": buffers}), tmp_path / "bytes.parquet")
    report = filter_photos(FilterConfig(photos=str(tmp_path / "bytes.parquet"), output=str(tmp_path / "o.parquet"),
                                        progress=False))  # fmt: skip
    assert report["removed"] == {"near_duplicate": 1} and report["photos_kept"] == 2
