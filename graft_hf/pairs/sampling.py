"""Tile sampling as in GRAFT section 3.2: satellite tiles centred on ground-photo geotags (or, for the paper's
section 4.4 ablation, placed at random).

Photos are visited in a seeded random order. An unassigned photo becomes a tile centre, and every photo whose
geotag falls inside the tile's footprint (``footprint_size`` pixels square around the centre, 224 in the paper) is
assigned to it. Assigned photos never become centres, so any two centres are at least half a footprint (112 px)
apart along some axis. Each tile keeps at most ``max_photos_per_tile`` photos, a seeded random subset of all the
photos inside its footprint (the centre photo has no priority: it is the tile's name and position, not a
privileged target). Crops (``crop_size``, 448) are later cut around the same centre.

Sampling runs in metric *frames*: a CRS and the pixel size of the stored crops in it, the build's output GSD (the
sensor's training GSD, so footprint and spacing mean the paper's ground distances), or each scene's own pixel size
with ``native_gsd``. A photo belongs to the frame of the finest clear scene covering it (ties broken by CRS
string), so a tile and its photos always share a CRS and the footprint test is exact in pixels. Footprints are
squares aligned with the CRS axes.

Scenes: a scene is *clear* when its catalogued cloud cover is below ``max_cloud_cover``; a scene without a cloud
value is counted apart and used only where the sensor allows (NAIP, flown cloud-free) or the config says so. A
tile's candidate scenes are the clear scenes covering its centre (with ``native_gsd``, those of its frame only, as
a crop cannot mix pixel sizes), ranked by :func:`rank_scenes`: the newest first for NAIP; for Sentinel-2 the one
closest in time to the tile's photos, i.e. the smallest mean absolute gap between the scene's acquisition and the
capture times of the tile's kept photos (those with a known time; the newest scene when none has one). The mean of
absolute gaps favours the date most of the tile's photos were taken near (it is minimised by their median time),
so one stray photo taken years apart does not pull the choice. The builder uses the first candidate with enough
valid pixels.

Random placement (``tile_placement="random"``): centres are drawn uniformly over the clear scenes (a scene chosen
with probability proportional to its area, then a uniform point in it), rejected if inside an earlier centre's
footprint (the same >= 112 px spacing) or if no photo lies in the footprint (a tile without photos has no training
target); photos are assigned and capped exactly as above.
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

#: Random placement stops after this many draws per wanted tile (sparse photos over large scenes).
_DRAWS_PER_TILE = 200


@dataclass(frozen=True)
class TilePlan:
    """One sampled tile before any pixel is read.

    Attributes:
        tile_index: Position in the build's tile order (the seeded visiting order of centres, or the draw order of
            random tiles); fixes the output shard.
        tile_id: ``"<sensor>-<centre photo id>"``, or ``"<sensor>-random-<draw>"`` for a random tile.
        centre: Photo index of the centre, or -1 for a random tile.
        crs: CRS of the tile's frame; the crop is stored in it.
        x: Centre x in ``crs``.
        y: Centre y in ``crs``.
        members: Kept photo indices in visiting order.
        num_assigned: Photos inside the footprint before the ``max_photos_per_tile`` cap.
        candidates: Scene indices covering the centre, best first (the first with enough valid pixels is used).
    """

    tile_index: int
    tile_id: str
    centre: int
    crs: str
    x: float
    y: float
    members: tuple[int, ...]
    num_assigned: int
    candidates: tuple[int, ...]


@dataclass
class Plan:
    """The deterministic result of sampling: tiles in output order plus skip counts.

    Attributes:
        tiles: The tiles in output order.
        photo_dropped: Photos in no tile, by reason.
        num_frames: Metric frames sampled.
        scenes: Scenes by cloud status: ``clear``, ``cloudy``, ``no_cloud_cover`` (and whether those were used).
        placement: How tiles were placed: ``{"mode": ...}`` plus, for random tiles, the draws and rejections.
    """

    tiles: list[TilePlan]
    photo_dropped: Counter = field(default_factory=Counter)
    num_frames: int = 0
    scenes: dict = field(default_factory=dict)
    placement: dict = field(default_factory=dict)


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


def _to_lonlat(x: float, y: float, crs: str) -> tuple[float, float]:
    lon, lat = warp_transform(CRS.from_user_input(crs), CRS.from_epsg(4326), [x], [y])
    return float(lon[0]), float(lat[0])


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


def _inside_scene(scene: Scene, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Which points (scene CRS) lie inside the raster."""
    col, row = ~scene.transform @ (x, y)
    return (col >= 0) & (col < scene.width) & (row >= 0) & (row < scene.height)


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
        inside = _inside_scene(scene, x[candidates], y[candidates])
        if scene.footprint is not None:
            inside &= points_in_polygon(photos.lon[candidates], photos.lat[candidates], scene.footprint)
        pair_photo.append(candidates[inside])
        pair_scene.append(np.full(int(inside.sum()), s, dtype=np.int64))
    scene_index = np.concatenate(pair_scene) if pair_scene else np.empty(0, dtype=np.int64)
    photo_index = np.concatenate(pair_photo) if pair_photo else np.empty(0, dtype=np.int64)
    order = np.lexsort((scene_index, photo_index))
    return Coverage(scene=scene_index[order], photo=photo_index[order])


class _Buckets:
    """Points of one frame in square cells of side ``2 * half_extent``: a footprint around any point touches at
    most the 3 x 3 cells around it."""

    def __init__(self, x: np.ndarray, y: np.ndarray, half_extent: float) -> None:
        self.x, self.y, self.half, self.cell = x, y, half_extent, 2.0 * half_extent
        grid: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, key in enumerate(zip(self._cells(x), self._cells(y), strict=True)):
            grid[key].append(i)
        self.buckets = {key: np.asarray(members, dtype=np.int64) for key, members in grid.items()}

    def _cells(self, values: np.ndarray) -> list[int]:
        return np.floor(values / self.cell).astype(np.int64).tolist()

    def inside(self, x: float, y: float) -> np.ndarray:
        """Indices of the points with ``|dx| < h`` and ``|dy| < h`` from ``(x, y)``, ascending."""
        cx, cy = math.floor(x / self.cell), math.floor(y / self.cell)
        near = [
            self.buckets[(cx + i, cy + j)] for i in (-1, 0, 1) for j in (-1, 0, 1) if (cx + i, cy + j) in self.buckets
        ]
        if not near:
            return np.empty(0, dtype=np.int64)
        candidates = np.sort(np.concatenate(near))
        keep = (np.abs(self.x[candidates] - x) < self.half) & (np.abs(self.y[candidates] - y) < self.half)
        return candidates[keep]


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
    rank = np.empty(len(visit), dtype=np.int64)
    rank[visit] = np.arange(len(visit))
    buckets = _Buckets(x, y, half_extent)
    assigned = np.zeros(len(x), dtype=bool)
    tiles = []
    for centre in visit:
        if assigned[centre]:
            continue
        members = buckets.inside(float(x[centre]), float(y[centre]))
        if exclusive:
            members = members[~assigned[members]]
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
        of_scene: Frame index per scene, -1 for scenes not used, shape ``(num_scenes,)``.
        of_photo: Frame index per photo (that of the finest clear scene covering it), -1 if none, shape
            ``(num_photos,)``.
    """

    frames: list[tuple[float, str]]
    of_scene: np.ndarray
    of_photo: np.ndarray


def _assign_frames(
    covered: Coverage, scenes: list[Scene], clear: np.ndarray, num_photos: int, output_gsd: float | None
) -> _Frames:
    def frame_of(scene: Scene) -> tuple[float, str]:
        return (scene.gsd if output_gsd is None else output_gsd, scene.crs)

    frames = sorted({frame_of(s) for s, ok in zip(scenes, clear, strict=True) if ok})
    frame_index = {frame: i for i, frame in enumerate(frames)}
    of_scene = np.array([frame_index[frame_of(s)] if ok else -1 for s, ok in zip(scenes, clear, strict=True)])
    # The finest clear scene covering a photo (ties: CRS string, then scene order) decides its frame.
    order = sorted(range(len(scenes)), key=lambda s: (scenes[s].gsd, scenes[s].crs, s))
    scene_rank = np.empty(len(scenes), dtype=np.int64)
    scene_rank[order] = np.arange(len(scenes))
    clear_pair = clear[covered.scene]
    best = np.full(num_photos, len(scenes), dtype=np.int64)
    np.minimum.at(best, covered.photo[clear_pair], scene_rank[covered.scene[clear_pair]])
    of_photo = np.full(num_photos, -1, dtype=np.int64)
    has = best < len(scenes)
    of_photo[has] = of_scene[np.asarray(order)[best[has]]]
    return _Frames(frames, of_scene, of_photo)


@dataclass
class _Context:
    """What every tile of a plan needs: inputs, frames, the photos' visiting ranks and the config."""

    photos: PhotoTable
    scenes: list[Scene]
    covered: Coverage
    frames: _Frames
    rank: np.ndarray
    config: PairsBuildConfig
    in_footprint: np.ndarray  # photos inside some tile's footprint (before the cap)

    def half_extent(self, f: int) -> float:
        """Half the footprint side of frame ``f`` in CRS units."""
        return self.config.footprint_size / 2 * self.frames.frames[f][0]

    def frame_points(self, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(photo indices, x, y)`` of frame ``f``'s photos in its CRS."""
        index = np.flatnonzero(self.frames.of_photo == f)
        x, y = project_lonlat(self.photos.lon[index], self.photos.lat[index], self.frames.frames[f][1])
        return index, x, y

    def usable(self, s: int, f: int) -> bool:
        """Scene ``s`` may give crops to a tile of frame ``f``: clear, and of that frame with ``native_gsd``."""
        own = self.frames.of_scene[s]
        return own >= 0 and (own == f or not self.config.native_gsd)

    def cap(self, members: np.ndarray, key: tuple[int, int]) -> np.ndarray:
        """Over the cap, a seeded random subset of all members (``key`` seeds it per tile); in visiting order."""
        members = members[np.argsort(self.rank[members], kind="stable")]
        limit = self.config.max_photos_per_tile
        if len(members) <= limit:
            return members
        rng = np.random.default_rng((self.config.seed, *key))
        return members[np.sort(rng.choice(len(members), size=limit, replace=False))]

    def tile(
        self,
        tile_id: str,
        centre: int,
        f: int,
        xy: tuple[float, float],
        members: np.ndarray,
        key: tuple[int, int],
        candidates: list[int],
    ) -> TilePlan:
        """A tile of frame ``f`` centred at ``xy`` with the photos ``members`` inside its footprint (capped with the
        seed ``key``) and the covering scenes ``candidates`` (ranked here by the kept photos' times)."""
        kept = self.cap(members, key)
        self.in_footprint[members] = True
        rule = self.config.resolved_scene_choice
        return TilePlan(
            tile_index=-1,
            tile_id=tile_id,
            centre=centre,
            crs=self.frames.frames[f][1],
            x=xy[0],
            y=xy[1],
            members=tuple(int(m) for m in kept),
            num_assigned=len(members),
            candidates=rank_scenes(candidates, self.scenes, self.photos.time_epoch[kept], rule),
        )


def _photo_tiles(f: int, context: _Context) -> list[TilePlan]:
    """The photo-centred tiles of frame ``f`` (``tile_index`` still unset)."""
    index, x, y = context.frame_points(f)
    if len(index) == 0:
        return []
    visit = np.argsort(context.rank[index], kind="stable")
    tiles = []
    for local, members_local in greedy_centres(
        x, y, visit, context.half_extent(f), context.config.exclusive_assignment
    ):
        centre = int(index[local])
        candidates = [int(s) for s in context.covered.scenes_of(centre) if context.usable(int(s), f)]
        tiles.append(
            context.tile(
                f"{context.config.sensor}-{context.photos.photo_id[centre]}",
                centre,
                f,
                (float(x[local]), float(y[local])),
                index[members_local],
                (0, int(context.rank[centre])),
                candidates,
            )
        )
    return tiles


def _in_footprint(scene: Scene, lon: float, lat: float) -> bool:
    """Whether a point lies inside the scene's footprint polygon (always, when it has none)."""
    return scene.footprint is None or bool(points_in_polygon(np.array([lon]), np.array([lat]), scene.footprint)[0])


def _covering(x: float, y: float, crs: str, f: int, context: _Context) -> list[int]:
    """The scenes usable by frame ``f`` that cover the point ``(x, y)`` of ``crs``."""
    lon, lat = _to_lonlat(x, y, crs)
    found = []
    for s, scene in enumerate(context.scenes):
        if not context.usable(s, f):
            continue
        if scene.crs == crs:
            sx, sy = np.array([x]), np.array([y])
        else:
            sx, sy = project_lonlat(np.array([lon]), np.array([lat]), scene.crs)
        if _inside_scene(scene, sx, sy)[0] and _in_footprint(scene, lon, lat):
            found.append(s)
    return found


def _random_tiles(context: _Context, target: int) -> tuple[list[TilePlan], dict]:
    """``target`` tiles at random centres over the clear scenes (fewer if the draws run out); and their counts."""
    config, scenes = context.config, context.scenes
    usable = np.flatnonzero(context.frames.of_scene >= 0)
    area = np.array([scenes[s].width * scenes[s].height * scenes[s].gsd ** 2 for s in usable], dtype=np.float64)
    frames = {f: context.frame_points(f) for f in range(len(context.frames.frames))}
    photos_near = {f: _Buckets(x, y, context.half_extent(f)) for f, (_, x, y) in frames.items()}
    centres: dict[int, tuple[list[float], list[float]]] = {f: ([], []) for f in frames}
    assigned = np.zeros(len(context.photos), dtype=bool)
    rng = np.random.default_rng((config.seed, 1))
    rejected: Counter = Counter()
    tiles: list[TilePlan] = []
    max_draws, draws = _DRAWS_PER_TILE * max(target, 1), 0
    while len(tiles) < target and draws < max_draws and len(usable):
        picks = rng.choice(len(usable), size=min(4096, max_draws - draws), p=area / area.sum())
        offsets = rng.random((len(picks), 2))
        for pick, (u, v) in zip(picks, offsets, strict=True):
            draw, draws = draws, draws + 1
            scene = scenes[usable[pick]]
            f = int(context.frames.of_scene[usable[pick]])
            x, y = (float(c) for c in scene.transform @ (u * scene.width, v * scene.height))
            if scene.footprint is not None and not _in_footprint(scene, *_to_lonlat(x, y, scene.crs)):
                rejected["outside_footprint"] += 1
                continue
            half = context.half_extent(f)
            xs, ys = centres[f]
            if any(abs(cx - x) < half and abs(cy - y) < half for cx, cy in zip(xs, ys, strict=True)):
                rejected["too_close"] += 1
                continue
            index = frames[f][0]
            local = photos_near[f].inside(x, y)
            members = index[local]
            if config.exclusive_assignment:
                members = members[~assigned[members]]
            if len(members) == 0:
                rejected["no_photos"] += 1
                continue
            xs.append(x)
            ys.append(y)
            assigned[members] = True
            candidates = _covering(x, y, scene.crs, f, context)
            tile_id = f"{config.sensor}-random-{draw:08d}"
            tiles.append(context.tile(tile_id, -1, f, (x, y), members, (2, draw), candidates))
            if len(tiles) == target:
                break
    counts = {"mode": "random", "target": target, "drawn": draws, "placed": len(tiles), "rejected": dict(rejected)}
    return tiles, counts


def _cloud_status(scenes: list[Scene], config: PairsBuildConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(clear, unknown)`` masks over the scenes and their counts."""
    unknown = np.array([s.cloud_cover is None for s in scenes], dtype=bool)
    cloudy = np.array([s.cloud_cover is not None and s.cloud_cover >= config.max_cloud_cover for s in scenes])
    clear = ~cloudy & (~unknown | config.unknown_cloud_cover_is_clear)
    counts = {
        "clear": int(clear.sum()),
        "cloudy": int(cloudy.sum()),
        "no_cloud_cover": int(unknown.sum()),
        "no_cloud_cover_used": bool(config.unknown_cloud_cover_is_clear),
    }
    return clear, unknown, counts


def _coverage_drops(covered: Coverage, clear: np.ndarray, unknown: np.ndarray, n: int) -> Counter:
    any_cover = np.bincount(covered.photo, minlength=n) > 0
    clear_cover = np.bincount(covered.photo[clear[covered.scene]], minlength=n) > 0
    unknown_pair = unknown[covered.scene] & ~clear[covered.scene]
    unknown_cover = np.bincount(covered.photo[unknown_pair], minlength=n) > 0
    no_clear = any_cover & ~clear_cover
    return Counter(
        {
            "outside_rasters": int((~any_cover).sum()),
            "only_cloudy_scenes": int((no_clear & ~unknown_cover).sum()),
            "only_scenes_without_cloud_cover": int((no_clear & unknown_cover).sum()),
        }
    )


def plan_tiles(photos: PhotoTable, scenes: list[Scene], config: PairsBuildConfig) -> Plan:
    """Sample every tile of the build (pure function of photos, scenes and config; no pixels read).

    Args:
        photos: Validated photos.
        scenes: Catalogue scenes.
        config: Build configuration.

    Returns:
        The plan: tiles in output order and photo skip counts (``outside_rasters``, ``only_cloudy_scenes``,
        ``only_scenes_without_cloud_cover``, ``over_tile_cap``, and for random tiles ``outside_random_tiles``).
    """
    clear, unknown, scene_counts = _cloud_status(scenes, config)
    plan = Plan(tiles=[], scenes=scene_counts, placement={"mode": config.tile_placement})
    n = len(photos)
    if n == 0:
        return plan
    covered = coverage(photos, scenes)
    plan.photo_dropped.update(_coverage_drops(covered, clear, unknown, n))
    frames = _assign_frames(covered, scenes, clear, n, config.output_gsd)
    plan.num_frames = len(frames.frames)
    visit = np.random.default_rng(config.seed).permutation(n)
    rank = np.empty(n, dtype=np.int64)
    rank[visit] = np.arange(n)
    context = _Context(photos, scenes, covered, frames, rank, config, np.zeros(n, dtype=bool))
    tiles = [t for f in range(len(frames.frames)) for t in _photo_tiles(f, context)]
    tiles.sort(key=lambda t: int(rank[t.centre]))
    if config.tile_placement == "random":
        context.in_footprint[:] = False
        tiles, plan.placement = _random_tiles(context, config.random_tiles or len(tiles))
    plan.tiles = [dataclasses.replace(t, tile_index=i) for i, t in enumerate(tiles)]
    kept = np.zeros(n, dtype=bool)
    for tile in plan.tiles:
        kept[list(tile.members)] = True
    framed = frames.of_photo >= 0
    plan.photo_dropped["over_tile_cap"] = int((context.in_footprint & ~kept).sum())
    plan.photo_dropped["outside_random_tiles"] = int((framed & ~context.in_footprint).sum())  # 0 unless random
    assert sum(plan.photo_dropped.values()) + kept.sum() == n
    return plan
