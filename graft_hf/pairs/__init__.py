"""Ground-satellite pair datasets: build (sampling, rasters, shards), embed (frozen teacher), stream (training loader).

Names are imported on first use (PEP 562), so importing the package stays cheap."""

from __future__ import annotations

from graft_hf._lazy import lazy_exports

_EXPORTS = {
    "PairsBuildConfig": "graft_hf.pairs.config",
    "PhotoColumns": "graft_hf.pairs.config",
    "build_pairs": "graft_hf.pairs.builder",
    "EmbedConfig": "graft_hf.pairs.config",
    "EmbedReport": "graft_hf.pairs.embed",
    "embed_pairs": "graft_hf.pairs.embed",
    "load_teacher": "graft_hf.pairs.embed",
    "LoaderConfig": "graft_hf.pairs.loader",
    "PairsIterableDataset": "graft_hf.pairs.loader",
    "build_pairs_dataloader": "graft_hf.pairs.loader",
    "collate_pairs": "graft_hf.pairs.loader",
    "open_pairs_stream": "graft_hf.pairs.loader",
    "pairs_features": "graft_hf.pairs.schema",
    "pairs_arrow_schema": "graft_hf.pairs.schema",
    "pairs_table": "graft_hf.pairs.schema",
    "photo_image_bytes": "graft_hf.pairs.schema",
    "read_catalog": "graft_hf.pairs.catalog",
    "load_photos": "graft_hf.pairs.photos",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
