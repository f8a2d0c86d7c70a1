"""Tile sampling exactly as GRAFT section 3.2: satellite tiles centred on ground-photo geotags.

Photos are visited in a seeded random order. An unassigned photo becomes a tile centre, and every photo whose
geotag falls inside the tile's footprint (``footprint_size`` pixels square around the centre, 224 in the paper) is
assigned to it. Assigned photos never become centres, so any two centres are at least half a footprint (112 px)
apart along some axis. Each tile keeps at most ``max_photos_per_tile`` photos: the centre plus a seeded random
subset of the others. Crops (``crop_size``, 448) are later cut around the same centre.

Sampling runs in metric *frames*: the projected grid ``(crs, gsd)`` of the scenes. A photo belongs to the frame of
the finest-resolution clear scene covering it (ties broken by CRS string), so a tile and its photos always share a
CRS and the footprint test is exact in pixels.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from .catalog import Scene, points_in_polygon
from .config import PairsBuildConfig
from .photos import PhotoTable

__all__ = ["Coverage", "Plan", "TilePlan", "coverage", "greedy_centres", "plan_tiles", "project_lonlat", "rank_scenes"]


@dataclass(frozen=True)
class TilePlan:
    """One sampled tile before any pixel is read.

    Attributes:
        tile_index: Position in the global (seeded) visiting order of centres; fixes the output shard.
        tile_id: ``"<sensor>-<centre photo id>"``.
        centre: Photo index of the centre.
        members: Kept photo indices, centre first, the rest in visiting order.
        num_assigned: Photos assigned before the ``max_photos_per_tile`` cap.
        candidates: Scene indices covering the centre, best first (the first with enough valid pixels is used).
    """

    tile_index: int
    tile_id: str
    centre: int
    members: tuple[int, ...]
    num_assigned: int
    candidates: tuple[int, ...]


@dataclass
class Plan:
    """The deterministic result of sampling: tiles in output order plus photo-level skip counts."""

    tiles: list[TilePlan]
    photo_dropped: Counter = field(default_factory=Counter)
    num_frames: int = 0


def project_lonlat(lon: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Project WGS84 lon/lat to ``crs`` coordinates.

    Args:
        lon: Longitudes, shape ``(num_points,)``.
        lat: Latitudes, shape ``(num_points,)``.
        crs: Target CRS (``"EPSG:xxxx"`` or WKT).

    Returns:
        ``(x, y)`` arrays, each shape ``(num_points,)``.
    """
    from rasterio.crs import CRS
    from rasterio.warp import transform

    if len(lon) == 0:
        return np.empty(0), np.empty(0)
    xs, ys = transform(CRS.from_epsg(4326), CRS.from_user_input(crs), lon.tolist(), lat.tolist())
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


@dataclass(frozen=True)
class Coverage:
    """Sparse scene-photo coverage: pair ``k`` says scene ``scene[k]`` covers photo ``photo[k]``.

    Attributes:
        scene: Scene index per pair, shape ``(num_pairs,)``.
        photo: Photo index per pair, sorted ascending (then by scene), shape ``(num_pairs,)``.
    """

    scene: np.ndarray
    photo: np.ndarray

    def scenes_of(self, photo: int) -> np.ndarray:
        """Indices of the scenes covering ``photo``, ascending."""
        lo, hi = np.searchsorted(self.photo, [photo, photo + 1])
        return self.scene[lo:hi]


def coverage(photos: PhotoTable, scenes: list[Scene]) -> Coverage:
    """Which scene covers which photo: the geotag lies inside the raster (and its footprint polygon, if any).

    Photos are projected once per CRS and sorted by x, so each scene only tests the photos in its x range
    (``O(num_scenes log num_photos + pairs)``, no dense scene-by-photo matrix).

    Args:
        photos: The photos.
        scenes: The scenes.

    Returns:
        The coverage pairs.
    """
    projected: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    pair_scene, pair_photo = [], []
    for s, scene in enumerate(scenes):
        if scene.crs not in projected:
            x, y = project_lonlat(photos.lon, photos.lat, scene.crs)
            order = np.argsort(x, kind="stable")
            projected[scene.crs] = (x, y, order, x[order])
        x, y, order, x_sorted = projected[scene.crs]
        a, _, c, _, e, f = scene.transform
        x_edges = sorted((c, c + a * scene.width))
        lo, hi = np.searchsorted(x_sorted, x_edges, side="left")
        candidates = order[max(lo - 1, 0) : hi + 1]
        col, row = (x[candidates] - c) / a, (y[candidates] - f) / e
        inside = (col >= 0) & (col < scene.width) & (row >= 0) & (row < scene.height)
        if scene.footprint is not None:
            inside &= points_in_polygon(photos.lon[candidates], photos.lat[candidates], scene.footprint)
        pair_photo.append(candidates[inside])
        pair_scene.append(np.full(int(inside.sum()), s, dtype=np.int64))
    scene_index = np.concatenate(pair_scene) if pair_scene else np.empty(0, dtype=np.int64)
    photo_index = np.concatenate(pair_photo) if pair_photo else np.empty(0, dtype=np.int64)
    order = np.lexsort((scene_index, photo_index))
    return Coverage(scene=scene_index[order], photo=photo_index[order])


def greedy_centres(
    x: np.ndarray, y: np.ndarray, visit: np.ndarray, half_extent: float, exclusive: bool
) -> list[tuple[int, np.ndarray]]:
    """The paper's greedy centre selection in one metric frame.

    Args:
        x: Projected x of the frame's photos, shape ``(num_photos,)``.
        y: Projected y, shape ``(num_photos,)``.
        visit: Local photo indices in visiting order, shape ``(num_photos,)``.
        half_extent: Half the footprint side in CRS units; a photo is inside if ``|dx| < h`` and ``|dy| < h``.
        exclusive: Assign only photos not yet assigned (else every photo inside the footprint).

    Returns:
        ``(centre, members)`` per tile in visiting order; ``members`` are local indices in visiting order and
        include the centre.
    """
    cell = 2.0 * half_extent
    rank = np.empty(len(visit), dtype=np.int64)
    rank[visit] = np.arange(len(visit))
    cx = np.floor(x / cell).astype(np.int64)
    cy = np.floor(y / cell).astype(np.int64)
    grid: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i in range(len(x)):
        grid[(int(cx[i]), int(cy[i]))].append(i)
    buckets = {key: np.asarray(members, dtype=np.int64) for key, members in grid.items()}
    assigned = np.zeros(len(x), dtype=bool)
    tiles = []
    for centre in visit:
        if assigned[centre]:
            continue
        near = [
            buckets[key]
            for key in ((cx[centre] + i, cy[centre] + j) for i in (-1, 0, 1) for j in (-1, 0, 1))
            if key in buckets
        ]
        candidates = np.concatenate(near)
        inside = (np.abs(x[candidates] - x[centre]) < half_extent) & (np.abs(y[candidates] - y[centre]) < half_extent)
        if exclusive:
            inside &= ~assigned[candidates]
        members = candidates[inside]
        members = members[np.argsort(rank[members], kind="stable")]
        assigned[members] = True
        tiles.append((int(centre), members))
    return tiles


def rank_scenes(candidates: list[int], scenes: list[Scene], photo_epochs: np.ndarray, rule: str) -> tuple[int, ...]:
    """Order candidate scenes best first.

    ``newest``: latest acquisition first (NAIP). ``closest_time``: smallest mean absolute time difference to the
    tile's photos with a known capture time (Sentinel-2); with no known times, newest first. Ties: newer, then href.

    Args:
        candidates: Scene indices covering the tile centre.
        scenes: All scenes.
        photo_epochs: Capture times of the tile's photos in epoch seconds, NaN if unknown.
        rule: ``"newest"`` or ``"closest_time"``.

    Returns:
        Scene indices, best first.
    """
    known = photo_epochs[~np.isnan(photo_epochs)]

    def key(s: int) -> tuple[float, float, str]:
        scene = scenes[s]
        gap = float(np.mean(np.abs(known - scene.epoch))) if rule == "closest_time" and len(known) else 0.0
        return (gap, -scene.epoch, scene.href)

    return tuple(sorted(candidates, key=key))


def plan_tiles(photos: PhotoTable, scenes: list[Scene], config: PairsBuildConfig) -> Plan:
    """Sample every tile of the build (pure function of photos, scenes and config; no pixels read).

    Args:
        photos: Validated photos.
        scenes: Catalogue scenes.
        config: Build configuration.

    Returns:
        The plan: tiles in global visiting order and photo skip counts (``outside_rasters``,
        ``only_cloudy_scenes``, ``over_tile_cap``).
    """
    plan = Plan(tiles=[])
    n = len(photos)
    if n == 0:
        return plan
    covered = coverage(photos, scenes)
    clear = np.array([s.cloud_cover is None or s.cloud_cover < config.max_cloud_cover for s in scenes], dtype=bool)
    any_cover = np.bincount(covered.photo, minlength=n) > 0
    clear_pair = clear[covered.scene]
    clear_cover = np.bincount(covered.photo[clear_pair], minlength=n) > 0
    plan.photo_dropped["outside_rasters"] = int((~any_cover).sum())
    plan.photo_dropped["only_cloudy_scenes"] = int((any_cover & ~clear_cover).sum())

    frames = sorted({(s.gsd, s.crs) for s, ok in zip(scenes, clear, strict=True) if ok})
    frame_index = {frame: i for i, frame in enumerate(frames)}
    frame_of_scene = np.array([frame_index[(s.gsd, s.crs)] if ok else -1 for s, ok in zip(scenes, clear, strict=True)])
    # The finest frame (lowest index) covering a photo wins.
    photo_frame = np.full(n, len(frames), dtype=np.int64)
    np.minimum.at(photo_frame, covered.photo[clear_pair], frame_of_scene[covered.scene[clear_pair]])
    photo_frame[photo_frame == len(frames)] = -1
    plan.num_frames = len(frames)

    visit = np.random.default_rng(config.seed).permutation(n)
    rank = np.empty(n, dtype=np.int64)
    rank[visit] = np.arange(n)
    rule = config.resolved_scene_choice
    raw_tiles: list[tuple[int, TilePlan]] = []
    kept = np.zeros(n, dtype=bool)
    for f, (gsd, crs) in enumerate(frames):
        index = np.flatnonzero(photo_frame == f)
        if len(index) == 0:
            continue
        x, y = project_lonlat(photos.lon[index], photos.lat[index], crs)
        local_visit = np.argsort(rank[index], kind="stable")
        half = config.footprint_size / 2 * gsd
        for centre_local, members_local in greedy_centres(x, y, local_visit, half, config.exclusive_assignment):
            centre = int(index[centre_local])
            members = index[members_local]
            num_assigned = len(members)
            if num_assigned > config.max_photos_per_tile:
                others = members[members != centre]
                rng = np.random.default_rng((config.seed, int(rank[centre])))
                chosen = rng.choice(len(others), size=config.max_photos_per_tile - 1, replace=False)
                others = others[np.sort(chosen)]
                members = np.concatenate([[centre], others])
            else:
                members = np.concatenate([[centre], members[members != centre]])
            kept[members] = True
            candidates = [int(s) for s in covered.scenes_of(centre) if frame_of_scene[s] == f]
            ordered = rank_scenes(candidates, scenes, photos.time_epoch[members], rule)
            raw_tiles.append(
                (
                    int(rank[centre]),
                    TilePlan(
                        tile_index=-1,
                        tile_id=f"{config.sensor}-{photos.photo_id[centre]}",
                        centre=centre,
                        members=tuple(int(m) for m in members),
                        num_assigned=num_assigned,
                        candidates=ordered,
                    ),
                )
            )
    raw_tiles.sort(key=lambda item: item[0])
    plan.tiles = [
        TilePlan(i, t.tile_id, t.centre, t.members, t.num_assigned, t.candidates) for i, (_, t) in enumerate(raw_tiles)
    ]
    plan.photo_dropped["over_tile_cap"] = int((photo_frame >= 0).sum() - kept.sum())
    assert math.isclose(sum(plan.photo_dropped.values()) + kept.sum(), n)
    return plan
