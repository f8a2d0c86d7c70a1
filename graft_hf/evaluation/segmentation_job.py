"""`graft eval-seg` as a library call: zero-shot land-cover segmentation on SatlasPretrain (GRAFT Table 3).

:class:`SegEvalConfig` says which model (a pixel-level GRAFT model, or the CLIPSeg baseline) to score on which
SatlasPretrain variant; :func:`run_segmentation_eval` loads both, scores every image on its label's own grid
(:func:`~graft_hf.tasks.segmentation.evaluate_segmentation`) over the classes present in the test labels, and
writes ``results.json`` and ``results.md``.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from graft_hf.config import ConfigError, config_dataclass, require
from graft_hf.evaluation.errors import renamed_parameters
from graft_hf.evaluation.satlas import SatlasSegmentation, load_satlas_segmentation
from graft_hf.evaluation.segmentation_metrics import SegmentationMetrics
from graft_hf.io import write_report
from graft_hf.tasks.segmentation import SegmentationConfig, Segmenter, ZeroShotSegmenter, evaluate_segmentation

logger = logging.getLogger(__name__)

__all__ = ["SegEvalConfig", "SegEvalReport", "load_segmenter", "run_segmentation_eval"]


@config_dataclass
class SegEvalConfig:
    """What `graft eval-seg` does: zero-shot land-cover segmentation of one model on SatlasPretrain.

    Attributes:
        data: SatlasPretrain root (holding metadata/, static/ and naip/ or sentinel2/).
        output_dir: Output folder for results.json and results.md.
        model: Pixel-level GRAFT model directory / Hub id, or a CLIPSeg directory for `baseline="clipseg"`.
        baseline: `graft` (a pixel-level GRAFT model) or `clipseg` (transformers' CLIPSeg).
        variant: Image modality: `naip` (zoom-17 images, labels at 1/16) or `sentinel2`.
        split: Split file in metadata/ (default: test_highres for NAIP, test_lowres for Sentinel-2).
        limit: Evaluate a seeded random subset of this many images.
        seed: Seed of the subset.
        min_pixels: Evaluate the classes with at least this many labelled cells in the evaluated labels.
        templates: Prompt-template set for the class names, or 'none' to embed the names as written.
        score: Score of GRAFT's patch-text similarity: `softmax` or `cosine` (the argmax is the same).
        device: cpu, cuda or auto.
        progress: Show a progress bar.
    """

    data: str
    output_dir: str
    model: str
    baseline: Literal["graft", "clipseg"] = "graft"
    variant: Literal["naip", "sentinel2"] = "naip"
    split: str | None = None
    limit: int | None = None
    seed: int = 0
    min_pixels: int = 1
    templates: str | None = "satellite"
    score: Literal["softmax", "cosine"] = "softmax"
    device: str = "cpu"
    progress: bool = True

    def validate_sizes(self) -> None:
        require(self.limit is None or self.limit > 0, "limit", f"must be positive, got {self.limit}")
        require(self.min_pixels > 0, "min_pixels", f"must be positive, got {self.min_pixels}")


@dataclass
class SegEvalReport:
    """What one segmentation evaluation measured.

    Attributes:
        model_name: The model evaluated.
        baseline: `graft` or `clipseg`.
        dataset: The SatlasPretrain samples scored.
        metrics: Per-class accuracy (Table 3), IoU and pixel accuracy over every label cell.
        seconds: Wall time.
    """

    model_name: str
    baseline: str
    dataset: SatlasSegmentation
    metrics: SegmentationMetrics
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        data = self.dataset
        return {
            "model": self.model_name,
            "baseline": self.baseline,
            "dataset": {
                "name": "SatlasPretrain land cover",
                "variant": data.variant.name,
                "split": data.split,
                "num_images": len(data),
                "label_grid": data.samples[0].window[2] if data.samples else None,
                "skipped": data.skipped,
            },
            "classes": data.class_names,
            "labelled_cells_per_class": data.pixel_counts,
            "metrics": self.metrics.to_dict(),
            "seconds": round(self.seconds, 3),
        }

    def markdown(self) -> str:
        data, metrics = self.dataset, self.metrics
        lines = [
            f"# Zero-shot land-cover segmentation of {self.model_name} on SatlasPretrain {data.variant.name} "
            f"({data.split})",
            "",
            f"{len(data)} images, {len(data.class_names)} classes present in the labels, {self.seconds:.1f} s.",
            "",
            f"Mean per-class accuracy {100 * metrics.mean_accuracy:.2f}%, mIoU {100 * metrics.miou:.2f}%, pixel "
            f"accuracy {100 * metrics.pixel_accuracy:.2f}%.",
            "",
            "| class | labelled cells | accuracy (%) | IoU (%) |",
            "|---|---|---|---|",
        ]
        for c, name in enumerate(data.class_names):
            accuracy, iou = float(metrics.per_class_accuracy[c]), float(metrics.per_class_iou[c])
            lines.append(f"| {name} | {data.pixel_counts[name]} | {100 * accuracy:.1f} | {100 * iou:.1f} |")
        return "\n".join(lines) + "\n"

    def write(self, outdir: str | Path) -> dict[str, Path]:
        """Write ``results.json`` and ``results.md`` into `outdir` (created)."""
        return write_report(outdir, self.to_dict(), self.markdown())


def load_segmenter(model: str, baseline: str = "graft", device: str = "cpu") -> Segmenter:
    """A pixel-level GRAFT :class:`ZeroShotSegmenter` or a CLIPSeg baseline from a directory (or Hub id)."""
    if baseline == "clipseg":
        from graft_hf.evaluation.clipseg import load_clipseg

        return load_clipseg(model, device=device)
    if baseline != "graft":
        raise ConfigError("baseline", f"unknown segmentation baseline {baseline!r}; use graft or clipseg")
    from graft_hf.tasks.map_setup import load_map_model

    loaded, image_processor, tokenizer = load_map_model(model, device)
    if not loaded.config.use_patch_head:
        raise ConfigError(
            "model", f"{model} is an image-level GRAFT model; segmentation needs a pixel-level checkpoint"
        )
    return ZeroShotSegmenter(loaded, tokenizer, image_processor)


def run_segmentation_eval(config: SegEvalConfig) -> tuple[SegEvalReport, dict[str, Path]]:
    """Load SatlasPretrain and the model, score the segmentation and write the report into `config.output_dir`."""
    with renamed_parameters({"path": "data"}):
        dataset = load_satlas_segmentation(
            config.data, config.variant, split=config.split, limit=config.limit, seed=config.seed,
            min_pixels=config.min_pixels,
        )  # fmt: skip
    if not dataset.class_names:
        raise ConfigError("min_pixels", f"no class has {config.min_pixels} labelled cells; lower it")
    segmenter = load_segmenter(config.model, config.baseline, config.device)
    templates = None if config.templates in (None, "", "none") else config.templates
    options = SegmentationConfig(templates=templates, score=config.score)
    started = time.perf_counter()
    metrics = evaluate_segmentation(
        segmenter, dataset, dataset.class_names, options, dataset.ignore_index, progress=config.progress,
        total=len(dataset),
    )  # fmt: skip
    report = SegEvalReport(
        model_name=Path(config.model).name or config.model,
        baseline=config.baseline,
        dataset=dataset,
        metrics=metrics,
        seconds=time.perf_counter() - started,
    )
    return report, report.write(config.output_dir)
