"""collect_photos end to end: filters on a noisy population, uniform sampling, resume after a real kill (nothing
lost, nothing twice), the key in no file, a region without photos, a GeoJSON polygon, the YFCC100M path."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from graft_hf.collect.photos import collect_photos, report_paths
from tests.collect.conftest import BBOX, CREDENTIALS, DATES, collect_config, expected_ids, ids_of
from tests.helpers.flickr_server import API_KEY, API_SECRET, make_population, serve_flickr
from tests.helpers.yfcc_dump import write_dump


@pytest.fixture
def noisy():
    """A population with every kind of photo a real one has: other licences, coarse geotags, videos, unknown dates."""
    photos = make_population(1500, BBOX, seed=5, cluster=(-99.15, 47.02, 0.003, 1500), noise=True)
    with serve_flickr(photos, cap=200, name="flickr-noisy") as state:
        yield state


def test_filters_sampling_and_report(tmp_path, noisy):
    report = collect_photos(collect_config(tmp_path, noisy.endpoint, max_photos_per_cell=20), credentials=CREDENTIALS)
    table = pq.read_table(tmp_path / "photos.parquet")
    everything = expected_ids(noisy.photos)
    assert report["photos_found"] == len(everything)
    assert set(ids_of(table)) <= everything and table.num_rows == report["photos_kept"]
    cells = pq.read_table(tmp_path / "photos.parquet").column("cell").to_pylist()
    assert max(cells.count(c) for c in set(cells)) == 20  # the dense town is capped ...
    counts = {row["cell"]: row for row in _csv(report_paths(tmp_path / "photos.parquet")[1])}
    assert sum(int(r["photos"]) for r in counts.values()) == len(everything)  # ... and the report says by how much
    assert sum(int(r["kept"]) for r in counts.values()) == table.num_rows
    assert report["skipped"]["date_taken_unknown"] > 0 and set(report["licenses"]) <= {
        "CC-BY-2.0", "CC-BY-SA-2.0", "CC-BY-ND-2.0", "CC0-1.0", "PDM-1.0", "CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-ND-4.0",
    }  # fmt: skip
    again = collect_photos(
        collect_config(tmp_path / "b", noisy.endpoint, max_photos_per_cell=20), credentials=CREDENTIALS
    )
    assert again["photos_kept"] == report["photos_kept"]
    assert ids_of(pq.read_table(tmp_path / "b" / "photos.parquet")) == ids_of(table)  # seeded: same sample


def _csv(path):
    import csv

    with open(path) as handle:
        return list(csv.DictReader(handle))


def _command(tmp_path, endpoint: str) -> list[str]:
    west, south, east, north = BBOX
    return [
        sys.executable, "-m", "graft_hf_cli", "-v", "collect", "photos", f"--bbox={west},{south},{east},{north}",
        "--start", DATES[0], "--end", DATES[1], "-o", str(tmp_path / "photos.parquet"), "--endpoint", endpoint,
        "--per-page", "50", "--result-cap", "200", "--requests-per-second", "1000", "--flush-rows", "150",
        "--max-photos-per-cell", "0", "--no-progress",
    ]  # fmt: skip


def test_killed_and_rerun_loses_and_duplicates_nothing(tmp_path, flickr, caplog):
    env = {**os.environ, "FLICKR_API_KEY": API_KEY, "FLICKR_API_SECRET": API_SECRET}
    flickr.block_after = 25  # the client hangs on request 26, mid-harvest
    process = subprocess.Popen(
        _command(tmp_path, flickr.endpoint), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not flickr.blocked.wait(0.2):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1].decode()[-2000:]
    process.send_signal(signal.SIGKILL)
    out, err = process.communicate(timeout=30)
    flickr.block_after = None
    flickr.release.set()
    assert list((tmp_path / "photos.parquet.collect").glob("part-*.parquet")), "cells were finished before the kill"
    assert not (tmp_path / "photos.parquet").exists()
    config = collect_config(tmp_path, flickr.endpoint, flush_rows=150)  # the same settings as the command line
    with caplog.at_level(logging.DEBUG):
        resumed = collect_photos(config, credentials=CREDENTIALS)
    ids = ids_of(pq.read_table(tmp_path / "photos.parquet"))
    assert len(ids) == len(set(ids)) and set(ids) == expected_ids(flickr.photos)
    clean = collect_photos(collect_config(tmp_path / "clean", flickr.endpoint), credentials=CREDENTIALS)
    assert resumed["api_calls_this_run"] < clean["api_calls_this_run"]  # the rerun did not start over
    assert ids == ids_of(pq.read_table(tmp_path / "clean" / "photos.parquet"))
    for path in [*tmp_path.rglob("*")]:  # state, parts, table, report, cells: the key is nowhere
        if path.is_file():
            data = path.read_bytes()
            assert API_KEY.encode() not in data and API_SECRET.encode() not in data, path
    for stream in (out, err, caplog.text.encode()):  # `graft -v`: DEBUG logs of every library
        assert API_KEY.encode() not in stream and API_SECRET.encode() not in stream


def test_region_without_photos_is_a_clear_error(tmp_path, flickr):
    config = collect_config(tmp_path, flickr.endpoint, bbox=(10.0, 10.0, 10.1, 10.1))
    with pytest.raises(ValueError, match="no photo matched .* widen the region or the dates"):
        collect_photos(config, credentials=CREDENTIALS)
    report = json.loads(report_paths(config.output)[0].read_text())
    assert report["photos_found"] == 0 and not (tmp_path / "photos.parquet").exists()


def test_geojson_polygon_region(tmp_path, flickr):
    triangle = [[-99.2, 47.0], [-99.1, 47.0], [-99.2, 47.05], [-99.2, 47.0]]  # the box's lower-left half
    (tmp_path / "region.geojson").write_text(
        json.dumps({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [triangle]}})
    )
    config = collect_config(tmp_path, flickr.endpoint, bbox=None, region=str(tmp_path / "region.geojson"))
    report = collect_photos(config, credentials=CREDENTIALS)
    inside = {p["id"] for p in flickr.photos if (p["longitude"] + 99.2) / 0.1 + (p["latitude"] - 47.0) / 0.05 < 1}
    ids = set(ids_of(pq.read_table(config.output)))
    assert ids == inside & expected_ids(flickr.photos)
    assert report["skipped"]["outside_region"] > 0


def test_yfcc_dump_source(tmp_path):
    spec = write_dump(tmp_path / "dump.bz2", BBOX)
    config = collect_config(tmp_path, "unused", yfcc=str(tmp_path / "dump.bz2"))
    report = collect_photos(config)  # no Flickr credentials needed
    assert set(ids_of(pq.read_table(config.output))) == spec["kept"]
    assert report["source"] == "yfcc100m" and report["lines_read"] == spec["lines"]
    assert report["skipped"] == spec["skipped"]


def test_missing_credentials_name_the_variables(tmp_path, flickr, monkeypatch):
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    monkeypatch.delenv("FLICKR_API_SECRET", raising=False)
    with pytest.raises(RuntimeError, match="FLICKR_API_KEY and FLICKR_API_SECRET not set"):
        collect_photos(collect_config(tmp_path, flickr.endpoint))


def test_unanswered_api_keeps_finished_cells(tmp_path, flickr):
    from graft_hf.collect.flickr import FlickrUnavailableError

    config = collect_config(tmp_path, flickr.endpoint, flush_rows=1, max_retries=1)
    flickr.faults = ["ok"] * 10 + ["500"] * 2  # Flickr goes down after ten calls
    with pytest.raises(FlickrUnavailableError, match="after 1 retries"):
        collect_photos(config, credentials=CREDENTIALS)
    assert list((tmp_path / "photos.parquet.collect").glob("part-*.parquet")), "finished cells are on disk"
    report = collect_photos(config, credentials=CREDENTIALS)  # back up: the rerun completes
    assert set(ids_of(pq.read_table(config.output))) == expected_ids(flickr.photos)
    assert report["query_cells_finished"] > 0
