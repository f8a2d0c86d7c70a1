"""Evaluation: zero-shot classification and retrieval from embeddings, metrics, the harness and its reports.

Names are imported on first use (PEP 562), so importing the package stays cheap."""

from __future__ import annotations

from graft_hf._lazy import lazy_exports

_EXPORTS = {
    "ZeroShotClassifier": "graft_hf.evaluation.zeroshot",
    "ZeroShotPrediction": "graft_hf.evaluation.zeroshot",
    "build_zero_shot_classifier": "graft_hf.evaluation.zeroshot",
    "classify": "graft_hf.evaluation.zeroshot",
    "zero_shot_logits": "graft_hf.evaluation.zeroshot",
    "multilabel_scores": "graft_hf.evaluation.zeroshot",
    "predict_multilabel": "graft_hf.evaluation.zeroshot",
    "average_precision": "graft_hf.evaluation.metrics",
    "recall_at_k": "graft_hf.evaluation.metrics",
    "single_positive_recall": "graft_hf.evaluation.metrics",
    "retrieval_metrics": "graft_hf.evaluation.metrics",
    "class_retrieval_metrics": "graft_hf.evaluation.metrics",
    "text_to_image_retrieval": "graft_hf.evaluation.metrics",
    "classification_metrics": "graft_hf.evaluation.metrics",
    "confusion_matrix": "graft_hf.evaluation.metrics",
    "per_class_accuracy": "graft_hf.evaluation.metrics",
    "topk_accuracy": "graft_hf.evaluation.metrics",
    "multilabel_metrics": "graft_hf.evaluation.metrics",
    "SATELLITE_TEMPLATES": "graft_hf.evaluation.templates",
    "TEMPLATE_SETS": "graft_hf.evaluation.templates",
    "CLIP_EUROSAT_TEMPLATES": "graft_hf.evaluation.templates",
    "EUROSAT_LABELS": "graft_hf.evaluation.templates",
    "get_templates": "graft_hf.evaluation.templates",
    "get_classnames": "graft_hf.evaluation.templates",
    "plot_confusion_matrix": "graft_hf.evaluation.plots",
    "retrieval_grid": "graft_hf.evaluation.plots",
    "EvalDataset": "graft_hf.evaluation.datasets",
    "load_eval_dataset": "graft_hf.evaluation.datasets",
    "DATASET_KINDS": "graft_hf.evaluation.datasets",
    "Encoder": "graft_hf.evaluation.encoders",
    "GraftImageEncoder": "graft_hf.evaluation.encoders",
    "GraftTextEncoder": "graft_hf.evaluation.encoders",
    "TeacherImageEncoder": "graft_hf.evaluation.encoders",
    "TeacherTextEncoder": "graft_hf.evaluation.encoders",
    "graft_encoder": "graft_hf.evaluation.encoders",
    "load_encoder": "graft_hf.evaluation.encoders",
    "load_text_encoder": "graft_hf.evaluation.encoders",
    "EvalReport": "graft_hf.evaluation.harness",
    "evaluate_model": "graft_hf.evaluation.harness",
    "resolve_templates": "graft_hf.evaluation.harness",
    "EvalConfig": "graft_hf.evaluation.job",
    "run_eval": "graft_hf.evaluation.job",
    "IndexBuildConfig": "graft_hf.evaluation.archive",
    "SearchConfig": "graft_hf.evaluation.archive",
    "build_index": "graft_hf.evaluation.archive",
    "search_index": "graft_hf.evaluation.archive",
    "VQAEvalConfig": "graft_hf.evaluation.vqa",
    "VQAEvalReport": "graft_hf.evaluation.vqa",
    "FolderImageSource": "graft_hf.evaluation.vqa",
    "load_rsvqa": "graft_hf.evaluation.vqa",
    "evaluate_vqa": "graft_hf.evaluation.vqa",
    "run_vqa_eval": "graft_hf.evaluation.vqa",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
