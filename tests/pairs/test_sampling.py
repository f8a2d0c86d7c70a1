"""Tile sampling rules of GRAFT section 3.2, checked against brute-force references."""

from __future__ import annotations

import glob

import numpy as np
import pytest

from graft_hf.pairs.catalog import Scene
from graft_hf.pairs.config import PairsBuildConfig
from graft_hf.pairs.sampling import coverage, greedy_centres, plan_tiles, project_lonlat, rank_scenes
from tests.helpers.data import SHARED_DATA
from tests.helpers.make_photos import make_photo_table

NAIP = SHARED_DATA / "naip-nd"


def _points(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(0, 5000, 300), rng.uniform(2000, 2100, 80)])
    y = np.concatenate([rng.uniform(0, 5000, 300), rng.uniform(2000, 2100, 80)])
    return x, y


@pytest.mark.parametrize("exclusive", [False, True])
def test_greedy_centres_spacing_and_assignment(exclusive: bool) -> None:
    x, y = _points()
    half = 112 * 5.0  # 224 px footprint at 5 m/px
    visit = np.random.default_rng(1).permutation(len(x))
    tiles = greedy_centres(x, y, visit, half, exclusive)
    centres = np.array([c for c, _ in tiles])

    # Centres come in visiting order and no centre lies inside an earlier tile's footprint (>= 112 px apart).
    order = {int(p): i for i, p in enumerate(visit)}
    assert [order[c] for c in centres] == sorted(order[c] for c in centres)
    dx = np.abs(x[centres][:, None] - x[centres][None])
    dy = np.abs(y[centres][:, None] - y[centres][None])
    chebyshev = np.maximum(dx, dy) + np.eye(len(centres)) * 1e9
    assert chebyshev.min() >= half

    # Brute force: members are exactly the photos inside the footprint (minus earlier ones if exclusive).
    seen = np.zeros(len(x), dtype=bool)
    for centre, members in tiles:
        inside = (np.abs(x - x[centre]) < half) & (np.abs(y - y[centre]) < half)
        expected = np.flatnonzero(inside & ~seen) if exclusive else np.flatnonzero(inside)
        assert sorted(members.tolist()) == expected.tolist()
        assert centre in members
        seen[members] = True
    assert seen.all(), "every photo must be assigned to some tile"
    if exclusive:
        counts = np.bincount(np.concatenate([m for _, m in tiles]), minlength=len(x))
        assert (counts == 1).all()


def test_rank_scenes_newest_and_closest_time() -> None:
    def scene(name: str, epoch: float) -> Scene:
        return Scene(
            name, "2020-01-01T00:00:00+00:00", epoch, 0.0, "EPSG:32633", (10, 0, 0, 0, -10, 0), 10, 10, ("B04",), None
        )

    day = 86400.0
    scenes = [scene("a", 100 * day), scene("b", 200 * day), scene("c", 300 * day)]
    photos = np.array([190 * day, 215 * day, np.nan])
    assert rank_scenes([0, 1, 2], scenes, photos, "newest") == (2, 1, 0)
    assert rank_scenes([0, 1, 2], scenes, photos, "closest_time") == (1, 2, 0)
    # No capture times: fall back to newest.
    assert rank_scenes([0, 1, 2], scenes, np.array([np.nan]), "closest_time") == (2, 1, 0)


@pytest.fixture(scope="module")
def naip_photos(tmp_path_factory: pytest.TempPathFactory):
    if not NAIP.is_dir():
        pytest.skip(f"real NAIP rasters not found at {NAIP} (../shared/data/naip-nd)")
    from graft_hf.pairs.catalog import load_catalog
    from graft_hf.pairs.photos import load_photos

    root = tmp_path_factory.mktemp("sampling")
    make_photo_table(
        root / "photos.csv",
        "EPSG:26914",
        (486200, 5205900, 490300, 5209000),
        150,
        seed=3,
        cluster=(488000, 5207500, 150, 60),
        with_images=False,
    )
    rasters = tuple(sorted(glob.glob(str(NAIP / "*.tif"))))
    return load_photos(root / "photos.csv"), load_catalog(None, rasters, "naip"), root


def test_plan_cap_determinism_and_newest_scene(naip_photos) -> None:
    photos, scenes, root = naip_photos
    config = PairsBuildConfig(photos=str(root / "photos.csv"), output_dir=str(root / "o"), rasters=("x",), seed=7)
    plan = plan_tiles(photos, scenes, config)
    again = plan_tiles(photos, scenes, config)
    other = plan_tiles(photos, scenes, PairsBuildConfig(**{**config.__dict__, "seed": 8}))
    assert plan.tiles == again.tiles
    assert [t.centre for t in other.tiles] != [t.centre for t in plan.tiles]

    assert max(len(t.members) for t in plan.tiles) == 25
    capped = [t for t in plan.tiles if t.num_assigned > 25]
    assert capped, "the 60-photo cluster must overflow the 25-photo cap"
    assert all(t.members[0] == t.centre and len(set(t.members)) == len(t.members) for t in plan.tiles)
    assert plan.photo_dropped["over_tile_cap"] > 0
    # NAIP: newest acquisition first among the three years.
    assert all(scenes[t.candidates[0]].date == "2020-08-31" for t in plan.tiles)
    assert all(len(t.candidates) == 3 for t in plan.tiles)

    # Centres >= 112 px apart in the raster grid (5 m/px).
    x, y = project_lonlat(photos.lon, photos.lat, "EPSG:26914")
    centres = np.array([t.centre for t in plan.tiles])
    d = np.maximum(np.abs(x[centres][:, None] - x[centres]), np.abs(y[centres][:, None] - y[centres]))
    assert (d + np.eye(len(centres)) * 1e9).min() >= 112 * 5.0


def test_sparse_coverage_matches_dense_check(naip_photos) -> None:
    import dataclasses

    photos, scenes, _ = naip_photos
    # A shifted copy of a scene with a footprint polygon covering only its western half.
    a, b, c, d, e, f = tuple(scenes[0].transform)[:6]
    shifted = dataclasses.replace(scenes[0], href="shifted", transform=(a, b, c + 2000.0, d, e, f - 1000.0))
    west = ((-99.3, 46.9), (-99.155, 46.9), (-99.155, 47.1), (-99.3, 47.1))
    clipped = dataclasses.replace(scenes[1], href="clipped", footprint=west)
    all_scenes = [*scenes, shifted, clipped]
    result = coverage(photos, all_scenes)
    x, y = project_lonlat(photos.lon, photos.lat, "EPSG:26914")
    for s, scene in enumerate(all_scenes):
        a, _, c, _, e, f = tuple(scene.transform)[:6]
        col, row = (x - c) / a, (y - f) / e
        dense = (col >= 0) & (col < scene.width) & (row >= 0) & (row < scene.height)
        if scene.footprint is not None:
            dense &= photos.lon < -99.155
        assert sorted(result.photo[result.scene == s].tolist()) == np.flatnonzero(dense).tolist(), scene.href
    assert 0 < (result.scene == len(all_scenes) - 1).sum() < (result.scene == 1).sum()
    assert np.all(np.diff(result.photo) >= 0)
