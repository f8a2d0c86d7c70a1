"""Zero-shot tasks on GRAFT models: segmentation (+SAM), detection, question answering (ViperGPT-style programs),
region maps.

Names are imported on first use (PEP 562), so importing the package stays cheap."""

from __future__ import annotations

from graft_hf._lazy import lazy_exports

_EXPORTS = {
    "ZeroShotSegmenter": "graft_hf.tasks.segmentation",
    "SegmentationConfig": "graft_hf.tasks.segmentation",
    "SegmentationResult": "graft_hf.tasks.segmentation",
    "evaluate_segmentation": "graft_hf.tasks.segmentation",
    "render_overlay": "graft_hf.tasks.segmentation",
    "render_score_map": "graft_hf.tasks.segmentation",
    "ObjectDetector": "graft_hf.tasks.detection",
    "DetectionConfig": "graft_hf.tasks.detection",
    "DetectionResult": "graft_hf.tasks.detection",
    "DetectedInstance": "graft_hf.tasks.detection",
    "render_detections": "graft_hf.tasks.detection",
    "VisualQuestionAnswerer": "graft_hf.tasks.vqa",
    "RuleBasedPlanner": "graft_hf.tasks.vqa",
    "ChainPlanner": "graft_hf.tasks.vqa",
    "VQAAnswer": "graft_hf.tasks.vqa",
    "CannotAnswerError": "graft_hf.tasks.vqa",
    "VQAConfig": "graft_hf.tasks.vqa",
    "ImagePatch": "graft_hf.tasks.vqa_api",
    "ImageScene": "graft_hf.tasks.vqa_api",
    "Program": "graft_hf.tasks.vqa_program",
    "ProgramError": "graft_hf.tasks.vqa_program",
    "parse_program": "graft_hf.tasks.vqa_program",
    "run_program": "graft_hf.tasks.vqa_interpreter",
    "LLMPlanner": "graft_hf.tasks.vqa_llm",
    "SamRefiner": "graft_hf.tasks.sam",
    "load_sam": "graft_hf.tasks.sam",
    "refine_segmentation": "graft_hf.tasks.sam",
    "encode_queries": "graft_hf.tasks.text",
    "RegionMapConfig": "graft_hf.tasks.map_setup",
    "RegionMapResult": "graft_hf.tasks.map_setup",
    "run_region_map": "graft_hf.tasks.region_map",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
