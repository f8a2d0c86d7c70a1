"""Photo download against a loopback image host: every failure counted by reason, none fatal; resize for the
teacher, EXIF orientation, original bytes kept when small enough; resume by shard, split across jobs, two worker
processes; the table it writes is what `graft pairs build` reads, licence and owner included."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from graft_hf.collect.config import DownloadConfig
from graft_hf.collect.download import download_photos
from graft_hf.config import ConfigError
from tests.helpers.loopback import LoopbackServer
from tests.helpers.photo_server import PhotoHost, build_app, photo_jpeg

KINDS = {"photos": 6, "missing": 2, "slow": 1, "truncated": 2, "html": 2, "flaky": 1, "rotated": 1, "small": 1}


@pytest.fixture(scope="module")
def host():
    state = PhotoHost(slow_seconds=3.0)
    with LoopbackServer(build_app(state), "photo-host") as server:
        yield state, server.url


def _table(path, base: str, kinds=KINDS) -> pa.Table:
    rows = []
    for kind, count in kinds.items():
        for i in range(count):
            photo_id = f"{kind}{i}"
            rows.append(
                {
                    "photo_id": photo_id,
                    "lat": 47.0 + 0.001 * len(rows),
                    "lon": -99.1,
                    "time": "2016-05-01T10:00:00",
                    "url": f"{base}/{kind}/{photo_id}.jpg",
                    "license": "CC-BY-2.0",
                    "owner": f"owner of {photo_id}",
                }
            )
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, path)
    return table


def _config(tmp_path, photos, **overrides) -> DownloadConfig:
    values = dict(photos=str(photos), output_dir=str(tmp_path / "out"), timeout=1.0, retries=1, backoff_seconds=0.01,
                  threads=4, shard_size=5, progress=False)  # fmt: skip
    return DownloadConfig(**{**values, **overrides})


def test_failures_are_counted_by_reason_and_photos_resized(tmp_path, host):
    _, base = host
    _table(tmp_path / "photos.parquet", base)
    result = download_photos(_config(tmp_path, tmp_path / "photos.parquet", image_size=224))
    assert result["complete"]
    assert result["failures"] == {"http_404": 2, "not_image": 2, "timeout": 1, "truncated_image": 2}
    assert result["photos_downloaded"] == 6 + 1 + 1 + 1  # photos, flaky (429 then ok), rotated, small
    photos = pq.read_table(tmp_path / "out" / "photos.parquet").to_pylist()
    by_id = {row["photo_id"]: row for row in photos}
    assert set(by_id) == {f"photos{i}" for i in range(6)} | {"flaky0", "rotated0", "small0"}
    for row in photos:  # licence and owner carried; image relative to the table
        assert row["license"] == "CC-BY-2.0" and row["owner"] == f"owner of {row['photo_id']}"
        with Image.open(tmp_path / "out" / row["image"]) as image:
            assert (image.width, image.height) == (row["image_width"], row["image_height"])
    assert (by_id["photos0"]["image_width"], by_id["photos0"]["image_height"]) == (299, 224)  # 400x300 -> short 224
    assert (by_id["rotated0"]["image_width"], by_id["rotated0"]["image_height"]) == (224, 299)  # EXIF 6: portrait
    small = (tmp_path / "out" / by_id["small0"]["image"]).read_bytes()
    assert small == photo_jpeg("small0", (160, 120))  # small upright JPEG: original bytes, no re-encode
    failures = pq.read_table(tmp_path / "out" / "failures.parquet").to_pylist()
    assert {f["photo_id"]: f["reason"] for f in failures}["slow0"] == "timeout"
    assert all(f["url"].startswith(base) for f in failures)
    report = json.loads((tmp_path / "out" / "download_report.json").read_text())
    assert report["photos_requested"] == sum(KINDS.values()) and report["bytes_stored"] > 0


def test_downloaded_table_is_what_the_builder_reads(tmp_path, host):
    from graft_hf.pairs.photos import load_photos

    _, base = host
    _table(tmp_path / "photos.parquet", base, {"photos": 4})
    download_photos(_config(tmp_path, tmp_path / "photos.parquet"))
    loaded = load_photos(tmp_path / "out" / "photos.parquet")
    assert len(loaded) == 4 and not loaded.dropped
    assert all(p is not None and p.startswith(str(tmp_path / "out" / "images")) for p in loaded.image_path)
    assert loaded.license == ["CC-BY-2.0"] * 4 and loaded.owner[0] == "owner of photos0"


def test_resume_skips_finished_shards(tmp_path, host):
    state, base = host
    _table(tmp_path / "photos.parquet", base, {"photos": 12})
    config = _config(tmp_path, tmp_path / "photos.parquet", shard_size=4)
    first = download_photos(config)
    before = state.requests["photos"]
    (tmp_path / "out" / "_download" / "shard-00001.parquet").unlink()  # as if killed while shard 1 ran
    (tmp_path / "out" / "photos.parquet").unlink()
    again = download_photos(config)
    assert state.requests["photos"] - before == 4  # only shard 1 again
    assert again["photos_downloaded"] == first["photos_downloaded"] == 12
    ids = pq.read_table(tmp_path / "out" / "photos.parquet").column("photo_id").to_pylist()
    assert ids == [f"photos{i}" for i in range(12)]  # input order, no duplicates


def test_jobs_split_shards_and_the_last_writes_the_table(tmp_path, host):
    _, base = host
    _table(tmp_path / "photos.parquet", base, {"photos": 10})
    job0 = download_photos(_config(tmp_path, tmp_path / "photos.parquet", shard_size=3, num_shards=2, shard_index=0))
    assert not job0["complete"] and job0["shards_done"] == 2 and job0["shards_total"] == 4
    assert not (tmp_path / "out" / "photos.parquet").exists()
    job1 = download_photos(_config(tmp_path, tmp_path / "photos.parquet", shard_size=3, num_shards=2, shard_index=1))
    assert job1["complete"] and job1["photos_downloaded"] == 10


def test_two_worker_processes_give_the_same_files(tmp_path, host):
    _, base = host
    _table(tmp_path / "photos.parquet", base, {"photos": 8})
    one = download_photos(_config(tmp_path / "a", tmp_path / "photos.parquet", shard_size=2))
    two = download_photos(_config(tmp_path / "b", tmp_path / "photos.parquet", shard_size=2, workers=2))
    assert one["photos_downloaded"] == two["photos_downloaded"] == 8
    for row in pq.read_table(tmp_path / "a" / "out" / "photos.parquet").to_pylist():
        assert (tmp_path / "a" / "out" / row["image"]).read_bytes() == (
            tmp_path / "b" / "out" / row["image"]
        ).read_bytes()


def test_keep_original_size_and_quality(tmp_path, host):
    _, base = host
    _table(tmp_path / "photos.parquet", base, {"photos": 1})
    download_photos(_config(tmp_path, tmp_path / "photos.parquet", image_size=0))
    row = pq.read_table(tmp_path / "out" / "photos.parquet").to_pylist()[0]
    data = (tmp_path / "out" / row["image"]).read_bytes()
    assert data == photo_jpeg("photos0")  # upright JPEG, no resize wanted: stored as downloaded
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (400, 300)
        assert np.asarray(image).shape == (300, 400, 3)


def test_bad_inputs(tmp_path, host):
    _, base = host
    with pytest.raises(FileNotFoundError, match="not found"):
        download_photos(_config(tmp_path, tmp_path / "none.parquet"))
    pq.write_table(pa.table({"photo_id": ["1"], "lat": [1.0], "lon": [2.0]}), tmp_path / "nourl.parquet")
    with pytest.raises(ConfigError, match="no url column"):
        download_photos(_config(tmp_path, tmp_path / "nourl.parquet"))
    pq.write_table(pa.table({"photo_id": ["1", "2"], "url": [None, "ftp://x/y.jpg"]}), tmp_path / "odd.parquet")
    result = download_photos(_config(tmp_path, tmp_path / "odd.parquet"))
    assert result["failures"] == {"invalid_url": 1, "no_url": 1} and result["photos_downloaded"] == 0
    with pytest.raises(ConfigError, match="shard_index"):
        DownloadConfig(photos="p", output_dir="o", num_shards=2, shard_index=2)
