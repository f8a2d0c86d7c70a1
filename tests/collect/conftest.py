"""Fixtures of the collection tests: a loopback Flickr API over a seeded population, the expected photo ids."""

from __future__ import annotations

import numpy as np
import pytest

from graft_hf.collect.licenses import DEFAULT_LICENSE_IDS
from tests.helpers.flickr_server import API_KEY, API_SECRET, make_population, serve_flickr

#: A 0.1 x 0.05 degree box over the real NAIP rasters of ../shared/data/naip-nd (North Dakota).
BBOX = (-99.2, 47.0, -99.1, 47.05)
DATES = ("2015-01-01", "2020-12-31")
CREDENTIALS = (API_KEY, API_SECRET)


def expected_ids(photos: list[dict], bbox=BBOX, licenses=DEFAULT_LICENSE_IDS, min_accuracy: int = 16) -> set[str]:
    """The ids a correct collection keeps, written the slow obvious way."""
    west, south, east, north = bbox
    return {
        p["id"]
        for p in photos
        if west <= p["longitude"] <= east
        and south <= p["latitude"] <= north
        and p["license"] in licenses
        and p["accuracy"] >= min_accuracy
        and p["media"] == "photo"
        and p["datetakenunknown"] == "0"
        and DATES[0] <= p["datetaken"][:10] <= DATES[1]
    }


@pytest.fixture
def flickr():
    """A running Flickr API over 2,000 photos (a dense "town" of 1,200 in a 0.004 degree box), cap 200."""
    photos = make_population(800, BBOX, seed=3, cluster=(-99.15, 47.02, 0.002, 1200), noise=False)
    with serve_flickr(photos, cap=200) as state:
        yield state


def collect_config(tmp_path, endpoint: str, **overrides):
    from graft_hf.collect.config import CollectPhotosConfig

    values = dict(
        output=str(tmp_path / "photos.parquet"), bbox=BBOX, start=DATES[0], end=DATES[1], endpoint=endpoint,
        per_page=50, result_cap=200, requests_per_second=1000.0, backoff_seconds=0.01, max_photos_per_cell=0,
        progress=False,
    )  # fmt: skip
    return CollectPhotosConfig(**{**values, **overrides})


def ids_of(table) -> list[str]:
    return [str(v) for v in np.asarray(table.column("photo_id").to_pylist())]
