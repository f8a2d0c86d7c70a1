"""Tile sampling exactly as GRAFT section 3.2: satellite tiles centred on ground-photo geotags.

Photos are visited in a seeded random order. An unassigned photo becomes a tile centre, and every photo whose
geotag falls inside the tile's footprint (``footprint_size`` pixels square around the centre, 224 in the paper) is
assigned to it. Assigned photos never become centres, so any two centres are at least half a footprint (112 px)
apart along some axis. Each tile keeps at most ``max_photos_per_tile`` photos: the centre plus a seeded random
subset of the others. Crops (``crop_size``, 448) are later cut around the same centre.

Sampling runs in metric *frames*: the projected grid ``(crs, gsd)`` of the scenes. A photo belongs to the frame of
the finest-resolution clear scene covering it (ties broken by CRS string), so a tile and its photos always share a
CRS and the footprint test is exact in pixels (for a rotated raster the footprint square is aligned with the CRS
axes, not with the pixel grid; the stored crop transform keeps the rotation, so photo pixel positions stay exact).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform

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
    if len(lon) == 0:
        return np.empty(0), np.empty(0)
    xs, ys = warp_transform(CRS.from_epsg(4326), CRS.from_user_input(crs), lon.tolist(), lat.tolist())
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


def _x_extent(scene: Scene) -> tuple[float, float]:
    """Smallest and largest CRS x of the raster's four corners (rotation included)."""
    cols = np.array([0.0, scene.width, 0.0, scene.width])
    rows = np.array([0.0, 0.0, scene.height, scene.height])
    xs, _ = scene.transform @ (cols, rows)
    return float(xs.min()), float(xs.max())


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
        lo, hi = np.searchsorted(x_sorted, _x_extent(scene), side="left")
        candidates = order[max(lo - 1, 0) : hi + 1]
        col, row = ~scene.transform @ (x[candidates], y[candidates])
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


@dataclass(frozen=True)
class _Frames:
    """The metric frames ``(gsd, crs)`` of the clear scenes and which frame each scene and photo belongs to.

    Attributes:
        frames: ``(gsd, crs)`` sorted, finest first.
        of_scene: Frame index per scene, -1 for cloudy scenes, shape ``(num_scenes,)``.
        of_photo: Frame index per photo (the finest clear frame covering it), -1 if none, shape ``(num_photos,)``.
    """

    frames: list[tuple[float, str]]
    of_scene: np.ndarray
    of_photo: np.ndarray


def _assign_frames(covered: Coverage, scenes: list[Scene], clear: np.ndarray, num_photos: int) -> _Frames:
    frames = sorted({(s.gsd, s.crs) for s, ok in zip(scenes, clear, strict=True) if ok})
    frame_index = {frame: i for i, frame in enumerate(frames)}
    of_scene = np.array([frame_index[(s.gsd, s.crs)] if ok else -1 for s, ok in zip(scenes, clear, strict=True)])
    clear_pair = clear[covered.scene]
    # The finest frame (lowest index) covering a photo wins.
    of_photo = np.full(num_photos, len(frames), dtype=np.int64)
    np.minimum.at(of_photo, covered.photo[clear_pair], of_scene[covered.scene[clear_pair]])
    of_photo[of_photo == len(frames)] = -1
    return _Frames(frames, of_scene, of_photo)


def _cap_members(centre: int, members: np.ndarray, rank: np.ndarray, config: PairsBuildConfig) -> np.ndarray:
    """Centre first, then the others in visiting order; over the cap, a seeded random subset of the others."""
    others = members[members != centre]
    if len(members) > config.max_photos_per_tile:
        rng = np.random.default_rng((config.seed, int(rank[centre])))
        chosen = rng.choice(len(others), size=config.max_photos_per_tile - 1, replace=False)
        others = others[np.sort(chosen)]
    return np.concatenate([[centre], others])


def _frame_tiles(
    f: int,
    photos: PhotoTable,
    scenes: list[Scene],
    covered: Coverage,
    frames: _Frames,
    rank: np.ndarray,
    config: PairsBuildConfig,
) -> list[TilePlan]:
    """The tiles of frame ``f`` (``tile_index`` still unset)."""
    gsd, crs = frames.frames[f]
    index = np.flatnonzero(frames.of_photo == f)
    if len(index) == 0:
        return []
    x, y = project_lonlat(photos.lon[index], photos.lat[index], crs)
    half = config.footprint_size / 2 * gsd
    tiles = []
    for centre_local, members_local in greedy_centres(
        x, y, np.argsort(rank[index], kind="stable"), half, config.exclusive_assignment
    ):
        centre = int(index[centre_local])
        members = _cap_members(centre, index[members_local], rank, config)
        candidates = [int(s) for s in covered.scenes_of(centre) if frames.of_scene[s] == f]
        tiles.append(
            TilePlan(
                tile_index=-1,
                tile_id=f"{config.sensor}-{photos.photo_id[centre]}",
                centre=centre,
                members=tuple(int(m) for m in members),
                num_assigned=len(members_local),
                candidates=rank_scenes(candidates, scenes, photos.time_epoch[members], config.resolved_scene_choice),
            )
        )
    return tiles


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
    clear_cover = np.bincount(covered.photo[clear[covered.scene]], minlength=n) > 0
    plan.photo_dropped["outside_rasters"] = int((~any_cover).sum())
    plan.photo_dropped["only_cloudy_scenes"] = int((any_cover & ~clear_cover).sum())
    frames = _assign_frames(covered, scenes, clear, n)
    plan.num_frames = len(frames.frames)

    visit = np.random.default_rng(config.seed).permutation(n)
    rank = np.empty(n, dtype=np.int64)
    rank[visit] = np.arange(n)
    tiles = [
        t for f in range(len(frames.frames)) for t in _frame_tiles(f, photos, scenes, covered, frames, rank, config)
    ]
    tiles.sort(key=lambda t: int(rank[t.centre]))
    plan.tiles = [dataclasses.replace(t, tile_index=i) for i, t in enumerate(tiles)]
    kept = np.zeros(n, dtype=bool)
    for tile in plan.tiles:
        kept[list(tile.members)] = True
    plan.photo_dropped["over_tile_cap"] = int((frames.of_photo >= 0).sum() - kept.sum())
    assert math.isclose(sum(plan.photo_dropped.values()) + kept.sum(), n)
    return plan
