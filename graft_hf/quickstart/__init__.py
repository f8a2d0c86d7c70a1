"""The EuroSAT benchmarks: ``graft quickstart`` (image level) and ``graft mosaic-benchmark`` (pixel level), GRAFT's
alt-text mode on real Sentinel-2 tiles.

Names are imported on first use (PEP 562), so importing the package stays cheap."""

from __future__ import annotations

from graft_hf._lazy import lazy_exports

_EXPORTS = {
    "BenchmarkConfig": "graft_hf.quickstart.config",
    "MissingInputError": "graft_hf.quickstart.config",
    "QuickstartConfig": "graft_hf.quickstart.config",
    "StudentArch": "graft_hf.quickstart.config",
    "run_quickstart": "graft_hf.quickstart.run",
    "EuroSATSplit": "graft_hf.quickstart.eurosat",
    "load_eurosat_split": "graft_hf.quickstart.eurosat",
    "write_eurosat_pairs": "graft_hf.quickstart.eurosat",
    "ObservationSampler": "graft_hf.quickstart.observations",
    "all_observation_texts": "graft_hf.quickstart.observations",
    "evaluate_student": "graft_hf.quickstart.report",
    "MosaicConfig": "graft_hf.quickstart.config",
    "run_mosaic_benchmark": "graft_hf.quickstart.mosaic_run",
    "MosaicSet": "graft_hf.quickstart.mosaic",
    "build_mosaics": "graft_hf.quickstart.mosaic",
    "write_mosaic_pairs": "graft_hf.quickstart.mosaic",
    "write_markdown_report": "graft_hf.quickstart.report",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
