"""YFCC100M dumps: both layouts, URL-encoded text, streaming from plain, bz2 and gzip files; videos, missing geotags,
other licences and malformed lines counted, never fatal."""

from __future__ import annotations

from collections import Counter

import pytest

from graft_hf.collect.licenses import DEFAULT_LICENSE_IDS
from graft_hf.collect.yfcc import parse_line, read_dump
from tests.collect.conftest import BBOX
from tests.helpers.yfcc_dump import write_dump, yfcc_line

LICENCES = frozenset(DEFAULT_LICENSE_IDS)


def test_both_layouts_parse_to_the_same_row():
    narrow, _ = parse_line(yfcc_line(3, -99.15, 47.02), LICENCES)
    wide, _ = parse_line(yfcc_line(3, -99.15, 47.02, wide=True), LICENCES)
    assert narrow == wide
    assert narrow["photo_id"] == "1003" and narrow["lat"] == pytest.approx(47.02) and narrow["accuracy"] == 16
    assert narrow["description"] == "an old elevator & the prairie" and narrow["owner"] == "user 3"
    assert narrow["tags"] == "prairie, north dakota, farm"  # comma-separated, '+' decoded
    assert narrow["license"] == "CC-BY-2.0" and narrow["time"] == "2016-07-27T17:52:25"
    assert narrow["url"].endswith("1003_ab.jpg") and narrow["source"] == "yfcc100m"


@pytest.mark.parametrize("suffix", [".tsv", ".bz2", ".gz"])
def test_streaming_reader_counts_every_skipped_line(tmp_path, suffix):
    spec = write_dump(tmp_path / f"dump{suffix}", BBOX)
    counts: Counter = Counter()
    rows = list(read_dump(tmp_path / f"dump{suffix}", LICENCES, counts))
    assert counts.pop("lines") == spec["lines"]
    assert counts == {"video": 1, "no_geotag": 1, "license_not_allowed": 1, "malformed_line": 2}
    # low accuracy, outside region and outside dates are the caller's filters: those rows come through
    assert len(rows) == len(spec["kept"]) + 3
