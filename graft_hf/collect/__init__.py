"""Collecting the raw material of a GRAFT dataset: geotagged ground photos (Flickr API or YFCC100M), their images,
and the satellite or aerial scenes under them (STAC).

``collect_photos`` -> photo table; ``download_photos`` -> image files + table; ``graft_hf.pairs.filter`` (optional);
``collect_imagery`` -> STAC ItemCollection; then ``graft_hf.pairs.build_pairs``. Names are imported on first use.
"""

from __future__ import annotations

from graft_hf._lazy import lazy_exports

_EXPORTS = {
    "CollectPhotosConfig": "graft_hf.collect.config",
    "DownloadConfig": "graft_hf.collect.config",
    "ImageryConfig": "graft_hf.collect.config",
    "collect_photos": "graft_hf.collect.photos",
    "download_photos": "graft_hf.collect.download",
    "collect_imagery": "graft_hf.collect.imagery",
    "sign_item_collection": "graft_hf.collect.imagery",
    "FLICKR_LICENSES": "graft_hf.collect.licenses",
    "DEFAULT_LICENSE_IDS": "graft_hf.collect.licenses",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
