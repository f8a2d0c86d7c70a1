"""Query cells: splitting in space then time until every cell is under Flickr's result cap, and the resumable
state folder (torn lines, other settings)."""

from __future__ import annotations

import json

import pytest

from graft_hf.collect.cells import Cell, CellState
from graft_hf.collect.photos import collect_photos
from tests.collect.conftest import CREDENTIALS, collect_config, expected_ids, ids_of


def test_children_split_space_then_time():
    cell = Cell(0.0, 0.0, 0.04, 0.02, 100, 200)
    quads = cell.children(0.01)
    assert len(quads) == 4 and {(c.west, c.south) for c in quads} == {(0, 0), (0.02, 0), (0, 0.01), (0.02, 0.01)}
    small = Cell(0.0, 0.0, 0.005, 0.005, 100, 200)
    halves = small.children(0.01)
    assert [(c.start, c.end) for c in halves] == [(100, 150), (151, 200)]  # disjoint, inclusive, covering
    assert Cell(0.0, 0.0, 0.005, 0.005, 7, 7).children(0.01) is None
    assert small.params()["min_taken_date"] == "1970-01-01 00:01:40"


def test_population_larger_than_the_cap_is_found_completely(tmp_path, flickr):
    import pyarrow.parquet as pq

    report = collect_photos(collect_config(tmp_path, flickr.endpoint), credentials=CREDENTIALS)
    ids = ids_of(pq.read_table(tmp_path / "photos.parquet"))
    assert len(flickr.photos) == 2000 and len(ids) == len(set(ids))
    assert set(ids) == expected_ids(flickr.photos)  # every photo, although any one query returns at most 200
    assert report["query_cells_split"] > 0 and report["photos_missed"] == 0
    state = [
        json.loads(line) for line in (tmp_path / "photos.parquet.collect" / "state.jsonl").read_text().splitlines()
    ]
    time_splits = [
        e["split"]
        for e in state
        if "split" in e and float(e["split"].split(",")[2]) - float(e["split"].split(",")[0]) < 0.01
    ]
    assert time_splits, "the dense town is below the minimum cell size: it must have been split in time"


def test_capped_cell_is_counted_not_silently_lost(tmp_path, flickr):
    for photo in flickr.photos[:300]:  # 300 photos at one spot and one second: no split can separate them
        photo.update(longitude=-99.1537, latitude=47.0211, datetaken="2016-01-01 00:00:00")
    flickr.columns = None
    report = collect_photos(collect_config(tmp_path, flickr.endpoint), credentials=CREDENTIALS)
    assert report["query_cells_capped"] == 1
    assert report["photos_missed"] == 100  # 300 there, 200 returned


def test_state_refuses_other_settings_and_drops_a_torn_line(tmp_path):
    state = CellState(tmp_path / "s", {"bbox": [1, 2, 3, 4]})
    state.mark_split(Cell(0, 0, 1, 1, 0, 10))
    with pytest.raises(ValueError, match="other settings"):
        CellState(tmp_path / "s", {"bbox": [1, 2, 3, 5]})
    with (tmp_path / "s" / "state.jsonl").open("a") as handle:
        handle.write('{"part": "part-0000')  # a kill in the middle of a line
    again = CellState(tmp_path / "s", {"bbox": [1, 2, 3, 4]})
    assert again.split == {Cell(0, 0, 1, 1, 0, 10).key}
    again.mark_split(Cell(0, 0, 2, 2, 0, 10))  # appending after the torn line was dropped keeps the file valid
    assert len(CellState(tmp_path / "s", {"bbox": [1, 2, 3, 4]}).split) == 2
