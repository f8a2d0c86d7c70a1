"""Tile sampling rules of GRAFT section 3.2, checked against brute-force references."""

from __future__ import annotations

import dataclasses
import glob

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform

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
        cluster=(488000, 5207500, 50, 60),
        with_images=False,
    )
    rasters = tuple(sorted(glob.glob(str(NAIP / "*.tif"))))
    return load_photos(root / "photos.csv"), load_catalog(None, rasters, "naip"), root


def _inside_footprint(photos, tile, half: float) -> bool:
    x, y = project_lonlat(photos.lon[list(tile.members)], photos.lat[list(tile.members)], tile.crs)
    return bool(np.all(np.abs(x - tile.x) < half) and np.all(np.abs(y - tile.y) < half))


@pytest.mark.parametrize("native", [False, True], ids=["warped_1m", "native_5m"])
def test_plan_cap_determinism_spacing_and_newest_scene(naip_photos, native: bool) -> None:
    photos, scenes, root = naip_photos
    config = PairsBuildConfig(
        photos=str(root / "photos.csv"), output_dir=str(root / "o"), rasters=("x",), seed=7, native_gsd=native
    )
    pixel = 5.0 if native else 1.0  # the footprint is 224 px of the frame's pixel size
    plan = plan_tiles(photos, scenes, config)
    again = plan_tiles(photos, scenes, config)
    other = plan_tiles(photos, scenes, dataclasses.replace(config, seed=8))
    assert plan.tiles == again.tiles
    assert [t.centre for t in other.tiles] != [t.centre for t in plan.tiles]

    assert max(len(t.members) for t in plan.tiles) == 25
    capped = [t for t in plan.tiles if t.num_assigned > 25]
    assert capped, "the 60-photo cluster must overflow the 25-photo cap"
    rank = {int(p): i for i, p in enumerate(np.random.default_rng(7).permutation(len(photos)))}
    for tile in plan.tiles:
        assert len(set(tile.members)) == len(tile.members)
        assert [rank[m] for m in tile.members] == sorted(rank[m] for m in tile.members), "kept in visiting order"
        assert _inside_footprint(photos, tile, 112 * pixel)
        assert tile.crs == "EPSG:26914" and tile.tile_id == f"naip-{photos.photo_id[tile.centre]}"
    assert plan.photo_dropped["over_tile_cap"] > 0
    # NAIP: newest acquisition first among the three years.
    assert all(scenes[t.candidates[0]].date == "2020-08-31" for t in plan.tiles)
    assert all(len(t.candidates) == 3 for t in plan.tiles)

    # Centres >= 112 px apart (1 m/px warped, 5 m/px native), sitting on their centre photo.
    x, y = project_lonlat(photos.lon, photos.lat, "EPSG:26914")
    centres = np.array([t.centre for t in plan.tiles])
    np.testing.assert_allclose([(t.x, t.y) for t in plan.tiles], np.stack([x[centres], y[centres]], axis=1))
    d = np.maximum(np.abs(x[centres][:, None] - x[centres]), np.abs(y[centres][:, None] - y[centres]))
    assert (d + np.eye(len(centres)) * 1e9).min() >= 112 * pixel


def test_cap_samples_among_all_photos_of_the_tile(naip_photos) -> None:
    """Over the cap, the kept 25 are a uniform random subset of all the tile's photos: the centre has no priority."""
    photos, scenes, root = naip_photos
    kept_centre, capped, seen = 0, 0, []
    for seed in range(40):
        config = PairsBuildConfig(photos=str(root / "p.csv"), output_dir=str(root / "o"), rasters=("x",), seed=seed)
        for tile in plan_tiles(photos, scenes, config).tiles:
            if tile.num_assigned > 25:
                capped += 1
                kept_centre += tile.centre in tile.members
                seen.append(tile.num_assigned)
    rate = 25 / np.mean(seen)  # expected chance of any one photo, the centre included
    assert capped >= 40 and 0 < kept_centre < capped
    assert abs(kept_centre / capped - rate) < 0.2, (kept_centre, capped, rate)


def test_random_tiles_rules_and_counts(naip_photos) -> None:
    photos, scenes, root = naip_photos
    base = PairsBuildConfig(photos=str(root / "p.csv"), output_dir=str(root / "o"), rasters=("x",), seed=3)
    centred = plan_tiles(photos, scenes, base)
    config = dataclasses.replace(base, tile_placement="random")
    plan = plan_tiles(photos, scenes, config)
    assert plan.tiles == plan_tiles(photos, scenes, config).tiles, "deterministic for a seed"
    placement = plan.placement
    # As many tiles as photo-centred sampling gives, unless the draws run out.
    assert placement["mode"] == "random" and placement["target"] == len(centred.tiles)
    assert placement["placed"] == len(plan.tiles) > 0.8 * len(centred.tiles)
    assert placement["drawn"] == placement["placed"] + sum(placement["rejected"].values())
    assert placement["rejected"]["no_photos"] > 0
    x, y = project_lonlat(photos.lon, photos.lat, "EPSG:26914")
    centres = np.array([(t.x, t.y) for t in plan.tiles])
    for tile in plan.tiles:
        assert tile.centre == -1 and tile.tile_id.startswith("naip-random-") and tile.members
        # Every photo inside the footprint is assigned (before the cap), none outside.
        inside = (np.abs(x - tile.x) < 112) & (np.abs(y - tile.y) < 112)
        assert tile.num_assigned == inside.sum() and set(tile.members) <= set(np.flatnonzero(inside))
        assert len(tile.candidates) == 3 and scenes[tile.candidates[0]].date == "2020-08-31"
    d = np.max(np.abs(centres[:, None] - centres[None]), axis=-1) + np.eye(len(centres)) * 1e9
    assert d.min() >= 112, "random centres keep the >= 112 px spacing"
    # The photos of the random tiles, the capped ones and those in no random tile add up.
    dropped = plan.photo_dropped
    kept = len({m for t in plan.tiles for m in t.members})
    assert kept + dropped["over_tile_cap"] + dropped["outside_random_tiles"] + dropped["outside_rasters"] == len(photos)
    assert dropped["outside_random_tiles"] > 0 and centred.photo_dropped["outside_random_tiles"] == 0
    # An explicit count.
    assert len(plan_tiles(photos, scenes, dataclasses.replace(config, random_tiles=5)).tiles) == 5


def test_sparse_coverage_matches_dense_check(naip_photos) -> None:
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


def test_closest_time_is_decided_by_the_tiles_photos_together() -> None:
    """Mean absolute gap over the tile's photos: one photo taken years apart does not pull the choice (the mean
    capture time would pick the other scene here)."""

    def scene(name: str, day: float) -> Scene:
        return Scene(name, "2020-01-01T00:00:00+00:00", day * 86400.0, 0.0, "EPSG:32633", (10, 0, 0, 0, -10, 0), 10,
                     10, ("B04",), None)  # fmt: skip

    scenes = [scene("near-most", 200), scene("near-mean", 500)]
    days = np.array([190.0, 195.0, 200.0, 1000.0])
    assert abs(days.mean() - 500) < abs(days.mean() - 200), "the mean time is closer to the second scene"
    assert rank_scenes([0, 1], scenes, days * 86400.0, "closest_time") == (0, 1)


@pytest.mark.parametrize("rule", ["auto", "clear", "skip"])
def test_scenes_without_cloud_cover_are_counted_apart(rule: str) -> None:
    """Sentinel-2: a scene with no cloud value is not taken as clear (unless told), and counted apart."""
    from graft_hf.pairs.photos import PhotoTable

    def scene(name: str, cloud: float | None, x0: float) -> Scene:
        return Scene(name, "2020-06-01T00:00:00+00:00", 0.0, cloud, "EPSG:32633", (10, 0, x0, 0, -10, 5340000), 100,
                     100, ("B02", "B03", "B04"), None)  # fmt: skip

    scenes = [scene("clear", 0.2, 400000.0), scene("cloudy", 40.0, 402000.0), scene("unknown", None, 404000.0)]
    lon, lat = [], []
    for x0 in (400000.0, 402000.0, 404000.0):  # two photos inside each scene
        xs, ys = [x0 + 300.0, x0 + 700.0], [5339500.0, 5339500.0]
        lo, la = warp_transform(CRS.from_epsg(32633), CRS.from_epsg(4326), xs, ys)
        lon += lo
        lat += la
    n = len(lon)
    photos = PhotoTable([f"p{i}" for i in range(n)], np.array(lat), np.array(lon), [None] * n, np.full(n, np.nan),
                        *([[None] * n] * 7), num_read=n)  # fmt: skip
    config = PairsBuildConfig(photos="p", output_dir="o", rasters=("x",), sensor="sentinel2", unknown_cloud_cover=rule,
                              footprint_size=16)  # fmt: skip
    plan = plan_tiles(photos, scenes, config)
    used = rule == "clear"
    assert plan.scenes == {"clear": 1 + used, "cloudy": 1, "no_cloud_cover": 1, "no_cloud_cover_used": used}
    assert plan.photo_dropped["only_cloudy_scenes"] == 2
    assert plan.photo_dropped["only_scenes_without_cloud_cover"] == (0 if used else 2)
    assert {scenes[t.candidates[0]].href for t in plan.tiles} == ({"clear", "unknown"} if used else {"clear"})
