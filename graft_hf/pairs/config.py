"""Typed configuration of the pair jobs: ``graft pairs build`` (:class:`PairsBuildConfig`, :class:`PhotoColumns`)
and ``graft pairs embed`` (:class:`EmbedConfig`).

The classes are :func:`graft_hf.config.config_dataclass` dataclasses: field types are checked by huggingface_hub's
strict dataclasses, cross-field rules are ``validate_*`` methods raising :class:`graft_hf.config.ConfigError` naming
the field, and the ``graft pairs`` flags, defaults and help are read from these definitions.

They are deliberately not frozen: strict checks types only on assignment, which a frozen dataclass never does
through ``__setattr__``, so a frozen config would accept ``seed="7"`` or ``rasters=["a.tif"]`` unchecked. Nothing
hashes or caches these configs; change one with :func:`dataclasses.replace` (which re-runs every check).

No ``from __future__ import annotations`` here: strict reads the runtime annotations.
"""

import dataclasses
from dataclasses import field
from typing import Literal

from graft_hf.config import config_dataclass, require
from graft_hf.modeling import get_sensor

__all__ = [
    "EmbedConfig",
    "EmbedField",
    "PairsBuildConfig",
    "PhotoColumns",
    "Resampling",
    "Sensor",
    "TeacherKind",
    "TilePlacement",
]

Sensor = Literal["naip", "sentinel2"]
Resampling = Literal["auto", "nearest", "bilinear", "cubic", "average", "lanczos"]
TilePlacement = Literal["photos", "random"]
TeacherKind = Literal["auto", "clip", "open_clip", "sentence"]
EmbedField = Literal["embedding", "text_embedding"]


def _sentinel2_scale() -> float:
    return float(get_sensor("sentinel2").value_scale)


def _sentinel2_offset() -> float:
    return float(get_sensor("sentinel2").value_offset)


@config_dataclass
class PhotoColumns:
    """Names of the photo table's columns; ``None`` looks for the usual aliases (see ``photos.py``).

    Attributes:
        photo_id: Unique photo id.
        lat: WGS84 latitude.
        lon: WGS84 longitude.
        time: Capture time (ISO 8601 string, datetime or epoch seconds).
        image: Local image path or encoded image bytes.
        url: Image URL.
        text: Alt-text or caption.
        license: Licence of the photo.
        owner: Owner or author of the photo.
        embedding: Precomputed image embedding.
        image_hash: Perceptual hash of the image (hex string, written by the collection's filtering stage); rows
            whose hash equals an earlier row's are duplicates.
    """

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
    image_hash: str | None = None


@config_dataclass
class PairsBuildConfig:
    """Everything a pair build depends on; filled from the command line in one place (``graft_hf_cli/pairs.py``).

    Attributes:
        photos: CSV or Parquet table of geotagged ground photos.
        output_dir: Folder receiving ``data/train-*.parquet``, ``README.md``, ``build_report.json`` and ``_build/``.
        catalog: Raster catalogue, a STAC ItemCollection (``.json``/``.geojson``) or CSV; or ``None`` to use
            ``rasters``.
        rasters: Raster paths or URLs used when there is no catalogue (date from an 8-digit ``YYYYMMDD`` in the
            file name or the TIFF ``DATETIME`` tag).
        sensor: ``"naip"`` (RGB = bands 1-3; newest covering scene) or ``"sentinel2"`` (RGB = B4, B3, B2 scaled by
            ``s2_rgb_max``; clear scene closest in time to the tile's photos).
        gsd: Metres per pixel of the stored crops; every crop is warped to it, so the footprint, the spacing and
            the crop mean the same ground distances whatever the source. Default: the sensor's training GSD in
            ``graft_hf.modeling.SENSORS`` (NAIP 1 m, Sentinel-2 10 m), as in the paper.
        native_gsd: Cut crops on each scene's own pixel grid instead (no resampling; the footprint then covers
            ``footprint_size`` source pixels, whatever their size). For comparisons and sources already at the
            training GSD.
        resampling: Kernel of the warp: ``"auto"`` takes ``"average"`` when the output pixel is larger than the
            source pixel (each output pixel is the area-weighted mean of the source pixels it covers, as a coarser
            sensor would integrate them; no aliasing) and ``"bilinear"`` otherwise (smooth, no overshoot, exact at
            source pixel centres); or any of ``nearest``, ``bilinear``, ``cubic``, ``average``, ``lanczos``.
        tile_placement: ``"photos"`` centres tiles on photo geotags (the paper's sampling); ``"random"`` places them
            uniformly at random over the clear scenes (the paper's section 4.4 ablation), keeping the same
            footprint, spacing, cap and scene rules.
        random_tiles: Tiles to place with ``tile_placement="random"``; 0 places as many as photo-centred sampling
            gives for the same inputs (a matched comparison).
        seed: Seed of the photo visiting order, of the random tile centres and of the per-tile photo subsampling.
        crop_size: Side of the stored crop in pixels (the paper stores 448; the model sees 224 after augmentation).
        footprint_size: Side in pixels of the footprint centred on a tile centre; photos inside it are assigned.
        max_photos_per_tile: Photos kept per tile: a seeded random subset of all the photos inside the footprint
            (the centre photo has no priority).
        exclusive_assignment: If true, a photo joins only the first tile whose footprint holds it; by default (the
            paper) every photo inside a footprint joins that tile, so a photo may appear in overlapping tiles.
        max_cloud_cover: Scenes with a catalogued cloud cover (percent) at or above this are never used.
        unknown_cloud_cover: Scenes without a cloud cover value: ``"auto"`` treats them as clear for NAIP (aerial
            imagery flown cloud-free; NAIP catalogues carry no cloud value) and never uses them for Sentinel-2;
            ``"clear"`` or ``"skip"`` decide for every sensor. They are counted apart in the report either way.
        scene_choice: ``"auto"`` (sensor default), ``"newest"`` or ``"closest_time"``.
        max_nodata_fraction: Crops with more nodata (outside the raster or equal to its nodata value) are skipped.
        strict_rasters: Stop the build at the first raster that cannot be opened or read; by default such rasters
            are skipped (in the catalogue) or the tile tries its next scene (when reading), counted by reason.
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
        s2_rgb_max: Sentinel-2 digital number mapped to 255 in the RGB crop (L2A reflectance x 10000, so 3000 = 0.3);
            default: the ``sentinel2`` sensor's ``value_scale`` in ``graft_hf.modeling.SENSORS``.
        s2_offset: Subtracted from Sentinel-2 numbers before scaling (1000 for processing baseline >= 04.00);
            default: the ``sentinel2`` sensor's ``value_offset``.
        columns: Photo table column names.
        progress: Show a tqdm progress bar.
    """

    photos: str
    output_dir: str
    catalog: str | None = None
    rasters: tuple[str, ...] = ()
    sensor: Sensor = "naip"
    gsd: float | None = None
    native_gsd: bool = False
    resampling: Resampling = "auto"
    tile_placement: TilePlacement = "photos"
    random_tiles: int = 0
    seed: int = 0
    crop_size: int = 448
    footprint_size: int = 224
    max_photos_per_tile: int = 25
    exclusive_assignment: bool = False
    max_cloud_cover: float = 1.0
    unknown_cloud_cover: Literal["auto", "clear", "skip"] = "auto"
    scene_choice: Literal["auto", "newest", "closest_time"] = "auto"
    max_nodata_fraction: float = 0.5
    strict_rasters: bool = False
    tiles_per_shard: int = 256
    row_group_size: int = 32
    workers: int = 1
    num_shards: int = 1
    shard_index: int = 0
    read_mode: Literal["window", "full"] = "window"
    include_bands: bool = False
    include_photo_bytes: bool = True
    download_photo_urls: bool = False
    s2_rgb_max: float = field(default_factory=_sentinel2_scale)
    s2_offset: float = field(default_factory=_sentinel2_offset)
    columns: PhotoColumns = field(default_factory=PhotoColumns)
    progress: bool = True

    def validate_imagery(self) -> None:
        """A catalogue or raster paths must be given."""
        require(
            self.catalog is not None or bool(self.rasters),
            "rasters",
            "no imagery given: set `catalog` (a STAC ItemCollection or CSV catalogue) or `rasters` (raster paths)",
        )

    def validate_sizes(self) -> None:
        """The footprint is positive and fits in the crop."""
        require(self.footprint_size > 0, "footprint_size", f"must be > 0, got {self.footprint_size}")
        require(
            self.crop_size >= self.footprint_size,
            "crop_size",
            f"must be >= footprint_size ({self.footprint_size}), got {self.crop_size}",
        )

    def validate_gsd(self) -> None:
        """An explicit output pixel size is positive and not combined with ``native_gsd``."""
        if self.gsd is not None:
            require(self.gsd > 0, "gsd", f"must be > 0 metres per pixel, got {self.gsd}")
            require(
                not self.native_gsd,
                "native_gsd",
                f"native_gsd keeps each scene's own pixel size, so it cannot be combined with gsd={self.gsd}; set one",
            )

    def validate_counts(self) -> None:
        """Seeds are non-negative; per-tile, per-shard and per-process counts are positive."""
        require(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        require(
            self.random_tiles >= 0,
            "random_tiles",
            f"must be >= 0 (0: as many as photo-centred sampling), got {self.random_tiles}",
        )
        for name in ("max_photos_per_tile", "tiles_per_shard", "row_group_size", "workers", "num_shards"):
            require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")

    def validate_shard_index(self) -> None:
        """This job's index is one of the ``num_shards`` jobs."""
        require(
            0 <= self.shard_index < self.num_shards,
            "shard_index",
            f"must be in [0, num_shards), got {self.shard_index} with num_shards={self.num_shards}",
        )

    @property
    def output_gsd(self) -> float | None:
        """Metres per pixel of the stored crops, or ``None`` with ``native_gsd`` (each scene's own)."""
        if self.native_gsd:
            return None
        if self.gsd is not None:
            return float(self.gsd)
        sensor_gsd = get_sensor(self.sensor).gsd
        assert sensor_gsd is not None, "every build sensor has a training GSD in SENSORS"
        return float(sensor_gsd)

    @property
    def unknown_cloud_cover_is_clear(self) -> bool:
        """Whether a scene without a cloud cover value may be used (``"auto"``: NAIP yes, Sentinel-2 no)."""
        if self.unknown_cloud_cover != "auto":
            return self.unknown_cloud_cover == "clear"
        return self.sensor == "naip"

    @property
    def resolved_scene_choice(self) -> str:
        """The scene rule in force: NAIP takes the newest scene, Sentinel-2 the one closest in time."""
        if self.scene_choice != "auto":
            return self.scene_choice
        return "newest" if self.sensor == "naip" else "closest_time"

    def plan_fingerprint_fields(self) -> dict[str, object]:
        """Fields that change the shards' content; a resumed build must match them exactly."""
        ignored = {"output_dir", "workers", "num_shards", "shard_index", "read_mode", "progress", "strict_rasters"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ignored}


@config_dataclass
class EmbedConfig:
    """What ``graft pairs embed`` does.

    Attributes:
        pairs: Folder of pair shards written by ``graft pairs build`` (searched recursively for ``*.parquet``), or
            one shard file.
        teacher: Local transformers CLIP (or text encoder) directory, a Hub id if cached, or an open_clip model name
            (see :func:`graft_hf.pairs.embed.load_teacher`).
        teacher_kind: ``"auto"`` (open_clip when ``pretrained`` or ``open_clip_config`` is given, else from the
            directory's ``config.json``), ``"clip"``, ``"open_clip"`` or ``"sentence"`` (a sentence-transformers
            text encoder).
        pretrained: open_clip checkpoint path (with an open_clip model name as ``teacher``).
        open_clip_config: JSON config of a custom open_clip architecture to register first.
        text: Embed the photos' text into ``text_embedding`` (the alt-text ablation) instead of the photos into
            ``embedding``.
        batch_size: Photos (or texts) per teacher forward pass.
        rows_per_batch: Tiles read and written per parquet batch (bounds memory).
        device: Device for the teacher: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ...
        overwrite: Re-embed shards already embedded by the same teacher.
        teacher_id: Identity recorded in the shards (default: kind + model path).
        report: Also write the JSON report to this path.
    """

    pairs: str
    teacher: str
    teacher_kind: TeacherKind = "auto"
    pretrained: str | None = None
    open_clip_config: str | None = None
    text: bool = False
    batch_size: int = 64
    rows_per_batch: int = 64
    device: str = "auto"
    overwrite: bool = False
    teacher_id: str | None = None
    report: str | None = None

    def validate_batches(self) -> None:
        """Batch sizes are positive."""
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.rows_per_batch >= 1, "rows_per_batch", f"must be >= 1, got {self.rows_per_batch}")

    @property
    def field(self) -> EmbedField:
        """The photo field this run fills."""
        return "text_embedding" if self.text else "embedding"
