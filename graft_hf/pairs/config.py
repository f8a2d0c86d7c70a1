"""Typed configuration of a pair build (``graft pairs build``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["PairsBuildConfig", "PhotoColumns"]

Sensor = Literal["naip", "sentinel2"]


@dataclass(frozen=True)
class PhotoColumns:
    """Names of the photo table's columns. ``None`` means "look for the usual aliases" (see ``photos.py``)."""

    photo_id: str | None = None
    lat: str | None = None
    lon: str | None = None
    time: str | None = None
    image: str | None = None
    url: str | None = None
    text: str | None = None
    license: str | None = None
    owner: str | None = None
    embedding: str | None = None


@dataclass(frozen=True)
class PairsBuildConfig:
    """Everything a pair build depends on; filled from the command line in one place (``graft_hf_cli/pairs.py``).

    Attributes:
        photos: CSV or Parquet table of geotagged ground photos.
        output_dir: Folder receiving ``data/train-*.parquet``, ``README.md``, ``build_report.json`` and ``_build/``.
        catalog: STAC ItemCollection (``.json``/``.geojson``) or CSV raster catalogue; or ``None`` to use ``rasters``.
        rasters: Raster paths/hrefs used when there is no catalogue (date from an 8-digit ``YYYYMMDD`` in the
            file name or the TIFF ``DATETIME`` tag).
        sensor: ``"naip"`` (RGB = bands 1-3; newest covering scene) or ``"sentinel2"`` (RGB = B4, B3, B2 scaled by
            ``s2_rgb_max``; clear scene closest in time to the tile's photos).
        seed: Seed of the photo visiting order and of the per-tile photo subsampling.
        crop_size: Side of the stored crop in pixels (the paper stores 448; the model sees 224 after augmentation).
        footprint_size: Side in pixels of the footprint centred on a tile centre; photos inside it are assigned.
        max_photos_per_tile: Photos kept per tile (the centre photo plus a seeded random subset of the others).
        exclusive_assignment: If true, a photo joins only the first tile whose footprint holds it; by default (the
            paper) every photo inside a footprint joins that tile, so a photo may appear in overlapping tiles.
        max_cloud_cover: Scenes with a catalogued cloud cover (percent) at or above this are never used.
        scene_choice: ``"auto"`` (sensor default), ``"newest"`` or ``"closest_time"``.
        max_nodata_fraction: Crops with more nodata (outside the raster or equal to its nodata value) are skipped.
        tiles_per_shard: Tiles per output parquet shard; fixes the tile-to-shard assignment for every worker count.
        row_group_size: Rows per parquet row group (random access unit for resuming readers).
        workers: Processes writing shards in parallel on this machine.
        num_shards: Number of independent machines/jobs the build is split over.
        shard_index: Which of the ``num_shards`` jobs this is (output shard ``i`` belongs to job ``i % num_shards``).
        read_mode: ``"window"`` reads only each crop's window (remote COG friendly); ``"full"`` reads whole rasters
            into memory once per worker (only for small local rasters and benchmarks).
        include_bands: Also store the raw multi-band crop as ``.npy`` bytes in ``bands``.
        include_photo_bytes: Store each photo's encoded bytes (read from a local path or table bytes).
        download_photo_urls: Fetch photos given only by URL (a failure keeps the photo without bytes, counted).
        s2_rgb_max: Sentinel-2 digital number mapped to 255 in the RGB crop (L2A reflectance x 10000, so 3000 = 0.3).
        s2_offset: Subtracted from Sentinel-2 numbers before scaling (1000 for processing baseline >= 04.00).
        columns: Photo table column names.
        progress: Show a tqdm progress bar.
    """

    photos: str
    output_dir: str
    catalog: str | None = None
    rasters: tuple[str, ...] = ()
    sensor: Sensor = "naip"
    seed: int = 0
    crop_size: int = 448
    footprint_size: int = 224
    max_photos_per_tile: int = 25
    exclusive_assignment: bool = False
    max_cloud_cover: float = 1.0
    scene_choice: Literal["auto", "newest", "closest_time"] = "auto"
    max_nodata_fraction: float = 0.5
    tiles_per_shard: int = 256
    row_group_size: int = 32
    workers: int = 1
    num_shards: int = 1
    shard_index: int = 0
    read_mode: Literal["window", "full"] = "window"
    include_bands: bool = False
    include_photo_bytes: bool = True
    download_photo_urls: bool = False
    s2_rgb_max: float = 3000.0
    s2_offset: float = 0.0
    columns: PhotoColumns = field(default_factory=PhotoColumns)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.catalog is None and not self.rasters:
            raise ValueError("no imagery given: pass --catalog (STAC ItemCollection or CSV) or --raster PATH")
        if self.sensor not in ("naip", "sentinel2"):
            raise ValueError(f"sensor must be 'naip' or 'sentinel2', got {self.sensor!r}")
        if self.footprint_size <= 0 or self.crop_size < self.footprint_size:
            raise ValueError(
                f"need 0 < footprint_size <= crop_size, got footprint_size={self.footprint_size}, "
                f"crop_size={self.crop_size}"
            )
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.max_photos_per_tile < 1:
            raise ValueError(f"max_photos_per_tile must be >= 1, got {self.max_photos_per_tile}")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(
                f"--shard-index must be in [0, --num-shards), got {self.shard_index} with --num-shards {self.num_shards}"
            )
        if self.tiles_per_shard < 1 or self.workers < 1 or self.row_group_size < 1:
            raise ValueError("tiles_per_shard, workers and row_group_size must all be >= 1")
        if self.read_mode not in ("window", "full"):
            raise ValueError(f"read_mode must be 'window' or 'full', got {self.read_mode!r}")
        if self.scene_choice not in ("auto", "newest", "closest_time"):
            raise ValueError(f"scene_choice must be 'auto', 'newest' or 'closest_time', got {self.scene_choice!r}")

    @property
    def resolved_scene_choice(self) -> str:
        """The scene rule in force: NAIP takes the newest scene, Sentinel-2 the one closest in time."""
        if self.scene_choice != "auto":
            return self.scene_choice
        return "newest" if self.sensor == "naip" else "closest_time"

    def plan_fingerprint_fields(self) -> dict[str, Any]:
        """Fields that change the shards' content; a resumed build must match them exactly."""
        ignored = {"output_dir", "workers", "num_shards", "shard_index", "read_mode", "progress"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ignored}
