"""One tile of a pair build: its crop (from the best readable scene with enough valid pixels), its photos with their
crop pixel positions and image bytes, and the shard row they make.

Runs in the build's worker processes. Everything a tile needs travels in a :class:`TileJob`, so a tile's row depends
only on the job and the config: the bytes are the same whichever process or machine builds it.
"""

from __future__ import annotations

import io
import logging
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform

from .catalog import Scene
from .config import PairsBuildConfig
from .photos import PhotoTable
from .raster import (
    Grid,
    RasterReader,
    RasterReadError,
    encode_png,
    native_grid,
    output_grid,
    resolve_resampling,
    rgb_bands,
    to_rgb,
)
from .sampling import Plan, project_lonlat
from .schema import encode_bands

__all__ = ["TileJob", "TileOutcome", "build_tile", "image_decodes", "tile_jobs"]

logger = logging.getLogger(__name__)

#: Largest photo (pixels) decoded to check it; larger ones are refused as not decodable (decompression bombs).
MAX_PHOTO_PIXELS = 64_000_000


@dataclass(frozen=True)
class TileJob:
    """What building one tile needs.

    Attributes:
        tile_id: The tile's id.
        crs: The tile's CRS (its sampling frame's).
        x: Centre x in ``crs``.
        y: Centre y in ``crs``.
        candidates: Scenes covering the centre, best first.
        photos: Kept photos: ``photo_id, lat, lon, time, license, owner, text, image_path, image, url, embedding``.
    """

    tile_id: str
    crs: str
    x: float
    y: float
    candidates: tuple[Scene, ...]
    photos: tuple[dict, ...]


@dataclass
class TileOutcome:
    """The row of one tile, or why it has none, and what happened on the way.

    Attributes:
        row: The shard row, or ``None``.
        dropped: Why there is no row: ``mostly_nodata`` or ``read_failed`` (every candidate failed or was mostly
            nodata, and at least one read failed).
        photo_images: Photos stored without image bytes, by reason (``download_failed``, ``unreadable``,
            ``undecodable``).
        read_failures: Failed reads per raster href.
    """

    row: dict | None = None
    dropped: str | None = None
    photo_images: Counter = field(default_factory=Counter)
    read_failures: Counter = field(default_factory=Counter)


def tile_jobs(photos: PhotoTable, scenes: list[Scene], plan: Plan, start: int, stop: int) -> list[TileJob]:
    """The jobs of the plan's tiles ``start`` to ``stop``."""
    jobs = []
    for tile in plan.tiles[start:stop]:
        records = tuple(
            {
                "photo_id": photos.photo_id[m],
                "lat": float(photos.lat[m]),
                "lon": float(photos.lon[m]),
                "time": photos.time[m],
                "license": photos.license[m],
                "owner": photos.owner[m],
                "text": photos.text[m],
                "image_path": photos.image_path[m],
                "image": photos.image_bytes[m],
                "url": photos.url[m],
                "embedding": photos.embedding[m],
            }
            for m in tile.members
        )
        candidates = tuple(scenes[s] for s in tile.candidates)
        jobs.append(TileJob(tile.tile_id, tile.crs, tile.x, tile.y, candidates, records))
    return jobs


def image_decodes(data: bytes) -> bool:
    """Whether encoded bytes decode completely as an image (JPEGs at 1/8 scale: the whole stream is still parsed).

    Args:
        data: Encoded image bytes.

    Returns:
        ``False`` for anything PIL cannot decode: not an image, truncated, corrupt, or over
        :data:`MAX_PHOTO_PIXELS`.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PHOTO_PIXELS:
                return False
            image.draft("RGB", (max(image.width // 8, 1), max(image.height // 8, 1)))
            image.load()
        return True
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def _download(record: dict) -> bytes | None:
    try:
        with urllib.request.urlopen(record["url"], timeout=30) as response:  # noqa: S310 - user-given URLs
            return response.read()
    except OSError as err:
        logger.warning("could not download photo %s from %s: %s", record["photo_id"], record["url"], err)
        return None


def _photo_bytes(record: dict, config: PairsBuildConfig, refused: Counter) -> bytes | None:
    """The photo's encoded bytes (table bytes, local file or download), or ``None`` (counted in ``refused``)."""
    if not config.include_photo_bytes:
        return None
    if record["image"] is not None:
        data = record["image"]
    elif record["image_path"] is not None:
        try:
            data = Path(record["image_path"]).read_bytes()
        except OSError as error:
            refused["unreadable"] += 1
            logger.warning("photo %s: cannot read %s (%s)", record["photo_id"], record["image_path"], error)
            return None
    elif record["url"] is not None and config.download_photo_urls:
        data = _download(record)
        if data is None:
            refused["download_failed"] += 1
            return None
    else:
        return None
    if not image_decodes(data):
        refused["undecodable"] += 1
        logger.warning("photo %s does not decode as an image; stored without image bytes", record["photo_id"])
        return None
    return data


@dataclass(frozen=True)
class _Crop:
    """A tile's crop cut from its chosen scene.

    Attributes:
        scene: The first candidate scene read with few enough nodata pixels.
        grid: The stored grid.
        bands: 1-based band indexes read (every band with ``include_bands``, else red, green, blue).
        rgb_index: 1-based indexes of red, green and blue.
        data: The bands on the grid, shape ``(len(bands), crop_size, crop_size)``.
    """

    scene: Scene
    grid: Grid
    bands: list[int]
    rgb_index: list[int]
    data: np.ndarray


def _grid(job: TileJob, scene: Scene, config: PairsBuildConfig) -> Grid:
    """The crop's grid on ``scene``: a window of its own grid with ``native_gsd``, else the output grid."""
    gsd = config.output_gsd
    if gsd is None:  # native: the frame is the scene's own CRS and pixel size
        return native_grid(scene, job.x, job.y, config.crop_size)
    return output_grid(scene, job.crs, job.x, job.y, gsd, config.crop_size)


def _cut_crop(job: TileJob, config: PairsBuildConfig, reader: RasterReader, outcome: TileOutcome) -> _Crop | None:
    """The crop from the best candidate scene readable with enough valid pixels, or ``None``."""
    for scene in job.candidates:
        grid = _grid(job, scene, config)
        rgb_index = rgb_bands(scene, config.sensor)
        bands = list(range(1, len(scene.band_names) + 1)) if config.include_bands else rgb_index
        resampling = resolve_resampling(config.resampling, scene.gsd, grid.gsd)
        try:
            data, valid = reader.read_grid(scene, bands, grid, resampling)
        except RasterReadError as error:
            if config.strict_rasters:
                raise
            outcome.read_failures[scene.href] += 1
            logger.warning("tile %s: %s; trying the next scene", job.tile_id, error)
            continue
        if 1.0 - valid.mean() <= config.max_nodata_fraction:
            return _Crop(scene, grid, bands, rgb_index, data)
    return None


def _photo_rows(job: TileJob, crop: _Crop, config: PairsBuildConfig, refused: Counter) -> list[dict]:
    """The tile's ``photos`` entries with their continuous pixel positions on the stored grid."""
    lon = np.array([p["lon"] for p in job.photos])
    lat = np.array([p["lat"] for p in job.photos])
    cols, rows = ~crop.grid.transform @ project_lonlat(lon, lat, crop.grid.crs)
    photos = []
    for p, row, col in zip(job.photos, rows, cols, strict=True):
        image = _photo_bytes(p, config, refused)
        embedding = p["embedding"]
        photos.append(
            {
                "photo_id": p["photo_id"],
                "lat": p["lat"],
                "lon": p["lon"],
                "row": float(row),
                "col": float(col),
                "time": p["time"],
                "license": p["license"],
                "owner": p["owner"],
                "text": p["text"],
                "image": None if image is None else {"bytes": image, "path": None},
                "url": p["url"],
                "embedding": None if embedding is None else np.asarray(embedding, dtype=np.float16),
                "text_embedding": None,
            }
        )
    return photos


def _centre_lonlat(grid: Grid) -> tuple[float, float]:
    """WGS84 ``(lon, lat)`` of the grid's centre."""
    x, y = grid.transform @ (grid.size / 2, grid.size / 2)
    lon, lat = warp_transform(CRS.from_user_input(grid.crs), CRS.from_epsg(4326), [x], [y])
    return float(lon[0]), float(lat[0])


def build_tile(job: TileJob, config: PairsBuildConfig, reader: RasterReader) -> TileOutcome:
    """Cut one tile's crop from its best usable scene and make its shard row.

    Args:
        job: The tile.
        config: Build configuration.
        reader: This process's raster reader.

    Returns:
        The outcome: the row, or the reason there is none, with the tile's photo and read counts.

    Raises:
        RasterReadError: A scene could not be read and ``config.strict_rasters`` is set.
    """
    outcome = TileOutcome()
    crop = _cut_crop(job, config, reader, outcome)
    if crop is None:
        outcome.dropped = "read_failed" if outcome.read_failures else "mostly_nodata"
        return outcome
    scene, grid = crop.scene, crop.grid
    rgb = to_rgb(
        crop.data[[crop.bands.index(b) for b in crop.rgb_index]], config.sensor, config.s2_rgb_max, config.s2_offset
    )
    lon, lat = _centre_lonlat(grid)
    outcome.row = {
        "tile_id": job.tile_id,
        "image": {"bytes": encode_png(rgb), "path": None},
        "bands": encode_bands(crop.data) if config.include_bands else None,
        "band_names": [scene.band_names[i - 1] for i in crop.bands],
        "crs": grid.crs,
        "transform": list(grid.transform)[:6],
        "gsd": grid.gsd,
        "source_gsd": scene.gsd,
        "sensor": config.sensor,
        "acquisition_date": scene.date,
        "center_lat": lat,
        "center_lon": lon,
        "raster": scene.href,
        "photos": _photo_rows(job, crop, config, outcome.photo_images),
    }
    return outcome
