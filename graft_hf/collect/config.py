"""Typed configuration of the collection jobs: ``graft collect photos`` (:class:`CollectPhotosConfig`),
``graft collect download`` (:class:`DownloadConfig`) and ``graft collect imagery`` (:class:`ImageryConfig`).

:func:`graft_hf.config.config_dataclass` classes: field types checked by huggingface_hub's strict dataclasses,
cross-field rules in ``validate_*`` methods raising :class:`graft_hf.config.ConfigError` naming the field; the
``graft collect`` flags, defaults and help are read from these definitions. Credentials are never fields: the
Flickr key comes from ``FLICKR_API_KEY``/``FLICKR_API_SECRET`` and the Planetary Computer subscription key from
``PC_SDK_SUBSCRIPTION_KEY``, so a config (saved in reports and state files) never holds a secret.

No ``from __future__ import annotations`` here: strict reads the runtime annotations.
"""

import dataclasses
from typing import Literal

from graft_hf.config import config_dataclass, require

__all__ = ["CollectPhotosConfig", "DownloadConfig", "ImageryConfig"]


@config_dataclass
class CollectPhotosConfig:
    """What ``graft collect photos`` collects and how (Flickr API or a YFCC100M dump).

    Attributes:
        output: Photo table to write (parquet), the input of ``graft collect download`` and ``graft pairs build``.
        bbox: Region as ``(west, south, east, north)`` in degrees (WGS84); or use ``region``.
        region: Region as a GeoJSON file (Polygon/MultiPolygon, Feature or FeatureCollection; WGS84).
        start: First capture date (``YYYY-MM-DD``, inclusive).
        end: Last capture date (``YYYY-MM-DD``, inclusive: the whole day).
        yfcc: Read this YFCC100M metadata dump (plain or ``.bz2``/``.gz``) instead of calling the Flickr API.
        min_accuracy: Smallest geotag accuracy kept (Flickr: 1 world .. 16 street; the paper keeps 16).
        licenses: Flickr licence ids kept (default: those allowing redistribution: CC BY, BY-SA, BY-ND 2.0 and 4.0,
            CC0, Public Domain Mark).
        non_commercial: Also keep the Creative Commons non-commercial licences (ids 1, 2, 3, 14, 15, 16).
        cell_size_km: Side of the sampling grid's cells in km (photos are sampled uniformly over the region, not
            as uploaded, so cities do not dominate).
        max_photos_per_cell: Photos kept per grid cell (a seeded random subset); 0 keeps every photo.
        seed: Seed of the per-cell sampling.
        endpoint: Flickr REST endpoint.
        per_page: Results per API page (Flickr returns at most 250 per page for geo queries).
        result_cap: Results Flickr returns per query at most; a query cell reporting more is split (space, then time)
            until every cell is under it.
        min_cell_degrees: Cells are split in space down to this size (degrees), then in time.
        requests_per_second: API calls per second at most (Flickr allows 3,600 per hour per key).
        max_retries: Retries of a failed API call (HTTP 429/5xx, timeouts, Flickr's "service unavailable"), with
            exponential backoff (honouring ``Retry-After``).
        backoff_seconds: First retry delay; it doubles with every retry (at most 300 s).
        timeout: Seconds before an API call times out.
        flush_rows: Finished cells are written to the state folder every this many photos (work lost on a kill).
        state_dir: Folder of the resumable state (default: ``<output>.collect``); rerunning the same command after
            a kill continues from the finished cells.
        progress: Show a progress bar.
    """

    output: str
    bbox: tuple[float | int, ...] | None = None
    region: str | None = None
    start: str | None = None
    end: str | None = None
    yfcc: str | None = None
    min_accuracy: int = 16
    licenses: tuple[int, ...] = (4, 5, 6, 9, 10, 11, 12, 13)
    non_commercial: bool = False
    cell_size_km: float = 1.0
    max_photos_per_cell: int = 100
    seed: int = 0
    endpoint: str = "https://api.flickr.com/services/rest/"
    per_page: int = 250
    result_cap: int = 4000
    min_cell_degrees: float = 0.01
    requests_per_second: float = 1.0
    max_retries: int = 8
    backoff_seconds: float = 1.0
    timeout: float = 60.0
    flush_rows: int = 20000
    state_dir: str | None = None
    progress: bool = True

    def validate_region(self) -> None:
        """Exactly one of ``bbox`` and ``region``."""
        require(
            (self.bbox is None) != (self.region is None),
            "bbox",
            "give exactly one of bbox (WEST,SOUTH,EAST,NORTH in degrees) and region (a GeoJSON file)",
        )

    def validate_numbers(self) -> None:
        """Accuracy in 1..16; positive sizes, rates and counts."""
        require(1 <= self.min_accuracy <= 16, "min_accuracy", f"must be in 1..16, got {self.min_accuracy}")
        require(self.cell_size_km > 0, "cell_size_km", f"must be > 0, got {self.cell_size_km}")
        require(self.max_photos_per_cell >= 0, "max_photos_per_cell", f"must be >= 0, got {self.max_photos_per_cell}")
        require(1 <= self.per_page <= 500, "per_page", f"must be in 1..500, got {self.per_page}")
        require(self.result_cap >= self.per_page, "result_cap", f"must be >= per_page, got {self.result_cap}")
        require(self.min_cell_degrees > 0, "min_cell_degrees", f"must be > 0, got {self.min_cell_degrees}")
        require(self.requests_per_second > 0, "requests_per_second", "must be > 0")
        require(self.max_retries >= 0, "max_retries", f"must be >= 0, got {self.max_retries}")
        require(self.backoff_seconds >= 0, "backoff_seconds", f"must be >= 0, got {self.backoff_seconds}")
        require(self.timeout > 0, "timeout", f"must be > 0, got {self.timeout}")
        require(self.flush_rows >= 1, "flush_rows", f"must be >= 1, got {self.flush_rows}")
        require(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        require(bool(self.licenses), "licenses", "give at least one Flickr licence id")

    @property
    def state_path(self) -> str:
        """The state folder in force."""
        return self.state_dir or f"{self.output}.collect"

    def query_fingerprint(self) -> dict[str, object]:
        """Fields that decide which photos the queries return; a resumed run must match them."""
        keys = ("bbox", "region", "start", "end", "yfcc", "min_accuracy", "licenses", "non_commercial", "endpoint")
        keys += ("per_page", "result_cap", "min_cell_degrees")
        values = dataclasses.asdict(self)
        return {k: list(values[k]) if isinstance(values[k], tuple) else values[k] for k in keys}


@config_dataclass
class DownloadConfig:
    """What ``graft collect download`` does: photo URLs -> resized JPEG files in shard folders + a photo table.

    Attributes:
        photos: Photo table with a URL column (``graft collect photos`` output, or any table ``graft pairs build``
            reads).
        output_dir: Folder receiving ``photos.parquet`` (the kept photos, ``image`` = path of each file relative to
            it), ``images/<shard>/<photo id>.jpg``, ``failures.parquet``, ``download_report.json`` and ``_download/``.
        image_size: Photos are downscaled so their shorter side is this many pixels (what a 224 px CLIP teacher
            needs; never upscaled); 0 keeps the original size.
        jpeg_quality: JPEG quality of resized photos (photos that need no resizing keep their original bytes).
        timeout: Seconds to wait for a server to connect or send data.
        retries: Retries of a download after a timeout, connection error, HTTP 429 or 5xx (exponential backoff,
            honouring ``Retry-After``); 404 and other client errors are not retried.
        backoff_seconds: First retry delay; it doubles with every retry (at most 300 s).
        threads: Concurrent downloads per worker process.
        workers: Worker processes on this machine.
        shard_size: Photos per shard (a shard is the unit of resuming and of splitting across machines).
        num_shards: Number of machines/jobs the download is split over.
        shard_index: Which of the ``num_shards`` jobs this is (shard ``i`` belongs to job ``i % num_shards``).
        max_bytes: Larger responses are refused (counted as ``too_large``).
        user_agent: HTTP User-Agent sent with every request.
        url_column: URL column of the photo table (default: ``url``, ``image_url`` or ``photo_url``).
        progress: Show a progress bar.
    """

    photos: str
    output_dir: str
    image_size: int = 224
    jpeg_quality: int = 95
    timeout: float = 20.0
    retries: int = 3
    backoff_seconds: float = 1.0
    threads: int = 16
    workers: int = 1
    shard_size: int = 1000
    num_shards: int = 1
    shard_index: int = 0
    max_bytes: int = 20_000_000
    user_agent: str = "graft-hf photo downloader"
    url_column: str | None = None
    progress: bool = True

    def validate_numbers(self) -> None:
        """Sizes, counts and limits are in range."""
        require(self.image_size >= 0, "image_size", f"must be >= 0, got {self.image_size}")
        require(1 <= self.jpeg_quality <= 100, "jpeg_quality", f"must be in 1..100, got {self.jpeg_quality}")
        require(self.timeout > 0, "timeout", f"must be > 0, got {self.timeout}")
        require(self.retries >= 0, "retries", f"must be >= 0, got {self.retries}")
        require(self.backoff_seconds >= 0, "backoff_seconds", f"must be >= 0, got {self.backoff_seconds}")
        for name in ("threads", "workers", "shard_size", "num_shards", "max_bytes"):
            require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        require(
            0 <= self.shard_index < self.num_shards,
            "shard_index",
            f"must be in [0, num_shards), got {self.shard_index} with num_shards={self.num_shards}",
        )


@config_dataclass
class ImageryConfig:
    """What ``graft collect imagery`` searches: the scenes under the photos, written as a STAC ItemCollection.

    Attributes:
        photos: Photo table (lat, lon and, for Sentinel-2, capture time per photo).
        output: STAC ItemCollection to write (``.json``), the ``catalog`` of ``graft pairs build``.
        sensor: ``"naip"`` (the newest scene under each photo) or ``"sentinel2"`` (L2A: the clear scene closest in
            time to each photo).
        endpoint: STAC API URL (default: Microsoft Planetary Computer).
        collection: STAC collection id (default: ``naip`` / ``sentinel-2-l2a``, the Planetary Computer names).
        sign: Sign asset URLs with Planetary Computer SAS tokens: ``auto`` (when the endpoint is the Planetary
            Computer), ``always`` or ``never``.
        sas_url: Planetary Computer token endpoint (default: ``PC_SDK_SAS_URL`` or the public one).
        max_cloud_cover: Sentinel-2 scenes need a catalogued ``eo:cloud_cover`` below this (percent).
        include_unknown_cloud: Also use Sentinel-2 scenes without a cloud-cover value (otherwise counted apart and
            left out).
        time_window_days: Sentinel-2 scenes are searched this many days around each photo's capture time.
        search_cell_degrees: Photos are grouped into cells of this size (degrees) and searched once per cell.
        scenes_per_photo: Scenes kept per photo (the best first; more give ``graft pairs build`` fallbacks when a
            crop has too much nodata).
        max_retries: Retries of a failed STAC request (connection errors, HTTP 429/5xx).
        timeout: Seconds before a STAC request times out.
        progress: Show a progress bar.
    """

    photos: str
    output: str
    sensor: Literal["naip", "sentinel2"] = "naip"
    endpoint: str = "https://planetarycomputer.microsoft.com/api/stac/v1"
    collection: str | None = None
    sign: Literal["auto", "always", "never"] = "auto"
    sas_url: str | None = None
    max_cloud_cover: float = 1.0
    include_unknown_cloud: bool = False
    time_window_days: float = 365.0
    search_cell_degrees: float = 0.1
    scenes_per_photo: int = 1
    max_retries: int = 5
    timeout: float = 60.0
    progress: bool = True

    def validate_numbers(self) -> None:
        """Limits and sizes are in range."""
        require(0 < self.max_cloud_cover <= 100, "max_cloud_cover", f"must be in (0, 100], got {self.max_cloud_cover}")
        require(self.time_window_days > 0, "time_window_days", f"must be > 0, got {self.time_window_days}")
        require(self.search_cell_degrees > 0, "search_cell_degrees", f"must be > 0, got {self.search_cell_degrees}")
        require(self.scenes_per_photo >= 1, "scenes_per_photo", f"must be >= 1, got {self.scenes_per_photo}")
        require(self.max_retries >= 0, "max_retries", f"must be >= 0, got {self.max_retries}")
        require(self.timeout > 0, "timeout", f"must be > 0, got {self.timeout}")

    @property
    def collection_id(self) -> str:
        """The collection in force."""
        return self.collection or {"naip": "naip", "sentinel2": "sentinel-2-l2a"}[self.sensor]
