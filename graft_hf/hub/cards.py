"""Model cards of GRAFT models, rendered from `hub_cards/model_card.md` and an evaluation JSON.

Evaluation JSON format (what `graft push --eval` and `load_eval_results` read): a list of result entries, or an
object `{"results": [...]}` holding that list. Each entry is

```json
{
  "task": "zero-shot-image-classification",          // Hub task id (task_type)
  "task_name": "Zero-shot classification",            // optional, human readable
  "dataset": {"name": "EuroSAT", "type": "eurosat",   // type: Hub dataset id or short name
              "split": "test", "config": null, "revision": null},  // optional fields
  "metrics": [{"type": "accuracy", "value": 0.62, "name": "top-1 accuracy"}]
}
```

Every metric becomes one `huggingface_hub.EvalResult`, and the card's `model-index` is built from them.
"""

import json
import logging
import math
import os
import re
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData, RepoCard

from graft_hf.config import config_dataclass
from graft_hf.hub.naming import ARCH_NAMES, model_repo_name
from graft_hf.modeling import SENSORS, GraftConfig
from graft_hf.resources import hub_card_template

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TRAINING_TEMPERATURE",
    "EvalResults",
    "REQUIRED_MODEL_CARD_KEYS",
    "REQUIRED_MODEL_CARD_SECTIONS",
    "ModelCardInfo",
    "base_model_for_config",
    "card_info_from_train_config",
    "check_model_card",
    "eval_results_table",
    "load_eval_results",
    "model_card_template_path",
    "parse_card_metadata",
    "render_model_card",
    "to_eval_results",
]

#: Evaluation results as `push_model` and `render_model_card` take them: a JSON path, parsed JSON (see the module
#: docstring), a list of `EvalResult`s, or `None`.
EvalResults = str | os.PathLike | list | dict | None

REQUIRED_MODEL_CARD_KEYS = ("license", "library_name", "pipeline_tag", "tags")
REQUIRED_MODEL_CARD_SECTIONS = (
    "## Model details",
    "## Intended use",
    "## How to load and query",
    "## Training data",
    "## Training recipe",
    "## Evaluation",
    "## Limitations",
    "## Ethical considerations",
    "## Citation",
)
_BASE_MODELS = {
    ("vitb", 16): "openai/clip-vit-base-patch16",
    ("vitb", 32): "openai/clip-vit-base-patch32",
    ("vitl", 14): "openai/clip-vit-large-patch14",
}


@config_dataclass
class ModelCardInfo:
    """What the card says beyond the config: where the model lives, what it was trained on, how it was made.

    Attributes:
        repo_id: Hub id the card refers to (used in the code examples and as `model_name`); `None` uses
            `model_repo_name(config)`.
        license: SPDX-like Hub licence id of the weights.
        base_model: Hub id of the CLIP model it starts from; `None` derives it from the architecture.
        datasets: Hub ids of the training datasets (pairs datasets).
        training_data: Free text describing the training data.
        training_recipe: Free text describing the recipe.
        training: Recipe hyper-parameters shown as a table (e.g. `{"epochs": 10, "batch size": 256}`).
        training_temperature: Temperature of the GRAFT contrastive loss (logit scale 1 / temperature during
            training); recorded for reference, zero-shot logits use CLIP's logit scale.
        converted_from: Description of a converted source checkpoint.
        tags: Extra Hub tags.
        language: Languages of the text tower.
    """

    repo_id: str | None = None
    license: str = "apache-2.0"
    base_model: str | None = None
    datasets: list[str] = field(default_factory=list)
    training_data: str = (
        "Satellite-ground image pairs: satellite tiles centred on geotagged ground photos, each paired with the "
        "photos whose geotags fall inside it (built with `graft pairs build`)."
    )
    training_recipe: str = (
        "Initialised from CLIP; the satellite vision tower was trained with GRAFT's contrastive loss against the "
        "frozen CLIP image embeddings of the ground photos, while CLIP's text tower stayed frozen."
    )
    training: dict[str, Any] = field(default_factory=dict)
    # GRAFT's contrastive loss temperature (logit scale 1 / 0.07 during training; not CLIP's zero-shot scale of 100).
    training_temperature: float | None = 0.07
    converted_from: str | None = None
    tags: list[str] = field(default_factory=list)
    language: list[str] = field(default_factory=lambda: ["en"])


#: GRAFT's contrastive loss temperature, the default of `ModelCardInfo.training_temperature`.
DEFAULT_TRAINING_TEMPERATURE: float | None = ModelCardInfo.training_temperature
_DEFAULT_TRAINING_DATA: str = ModelCardInfo.training_data


# Rows of the recipe table taken from a `graft train` config (`train_config.yaml`): (dotted key, label).
_RECIPE_ROWS = (
    ("task", "level (image / pixel)"),
    ("teacher.name_or_path", "frozen CLIP teacher"),
    ("student.init", "student initialisation"),
    ("loss.target", "loss target"),
    ("loss.temperature", "loss temperature"),
    ("loss.text_weight", "text loss weight"),
    ("loss.gather_negatives", "negatives gathered across processes"),
    ("data.max_photos", "max photos per tile"),
    ("data.rotate", "rotation augmentation"),
    ("data.translate", "translation augmentation"),
    ("optim.lr", "learning rate"),
    ("optim.weight_decay", "weight decay"),
    ("optim.warmup_ratio", "warmup ratio"),
    ("train.batch_size", "batch size"),
    ("train.epochs", "epochs"),
    ("train.max_steps", "max steps"),
    ("train.mixed_precision", "mixed precision"),
    ("student.lora.enabled", "LoRA"),
    ("seed", "seed"),
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def _dotted(tree: dict, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def card_info_from_train_config(config: str | os.PathLike | dict, repo_id: str | None = None) -> ModelCardInfo:
    """Card details from a `graft train` run config (`<output_dir>/train_config.yaml`, or its dict).

    Fills the recipe table, the training temperature (`loss.temperature`), the base model (`teacher.name_or_path`)
    and the training dataset (`data.path`) when those are Hub ids rather than local paths. Missing keys are skipped.
    """
    if not isinstance(config, dict):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"training config {path} not found")
        config = yaml.safe_load(path.read_text()) or {}
        if not isinstance(config, dict):
            raise ValueError(f"training config {path} is not a YAML mapping")
    info = ModelCardInfo(repo_id=repo_id)
    info.training = {label: v for key, label in _RECIPE_ROWS if (v := _dotted(config, key)) not in (None, "")}
    temperature = _dotted(config, "loss.temperature")
    if isinstance(temperature, (int, float)) and temperature > 0:
        info.training_temperature = float(temperature)
    teacher = _dotted(config, "teacher.name_or_path")
    if isinstance(teacher, str) and _HUB_ID.fullmatch(teacher) and not Path(teacher).exists():
        info.base_model = teacher
    data = _dotted(config, "data.path")
    if isinstance(data, str) and data:
        if _HUB_ID.fullmatch(data) and not Path(data).exists():
            info.datasets = [data]
            where = f"[`{data}`](https://huggingface.co/datasets/{data})"
        else:
            where = f"a local pairs build (`{Path(data).name}`)"
        split = _dotted(config, "data.split") or "train"
        info.training_data = f"{_DEFAULT_TRAINING_DATA} Trained on the `{split}` split of {where}."
    return info


def model_card_template_path() -> Path:
    """Location of the model_card.md template (see `graft_hf.resources.hub_card_template`)."""
    return hub_card_template("model_card.md")


def base_model_for_config(config: GraftConfig) -> str | None:
    """The OpenAI CLIP checkpoint with this config's vision tower shape, or `None` for other shapes."""
    vision = config.vision_config
    arch = ARCH_NAMES.get((vision.hidden_size, vision.num_hidden_layers))
    return _BASE_MODELS.get((arch, vision.patch_size)) if arch else None


def _require(entry: dict, key: str, where: str) -> Any:
    if key not in entry or entry[key] in (None, ""):
        raise ValueError(f"{where} has no {key!r}; see graft_hf.hub.cards for the evaluation JSON format")
    return entry[key]


def _read_results_json(source: str | os.PathLike | list | dict) -> list:
    """The list of result entries of an evaluation JSON file or of its parsed content."""
    data: Any = source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"evaluation JSON {path} not found")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"evaluation JSON {path} is not valid JSON: {err}") from err
    if isinstance(data, dict):
        data = _require(data, "results", "evaluation JSON object")
    if not isinstance(data, list):
        raise ValueError(
            f"evaluation JSON must be a list of results or {{'results': [...]}}, got {type(data).__name__}"
        )
    return data


def _entry_results(entry: Any, where: str) -> list[EvalResult]:
    """One `EvalResult` per metric of one result entry."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object, got {type(entry).__name__}")
    task = _require(entry, "task", where)
    dataset = _require(entry, "dataset", where)
    if not isinstance(dataset, dict):
        raise ValueError(f"{where}: 'dataset' must be an object with 'name' and 'type'")
    dataset_type = _require(dataset, "type", f"{where} dataset")
    dataset_name = _require(dataset, "name", f"{where} dataset")
    metrics = _require(entry, "metrics", where)
    if not isinstance(metrics, list) or not metrics:
        raise ValueError(f"{where}: 'metrics' must be a non-empty list of {{'type', 'value', 'name'}} objects")
    results = []
    for j, metric in enumerate(metrics):
        mwhere = f"{where} metric #{j}"
        value = _require(metric, "value", mwhere)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"{mwhere}: 'value' must be a finite number, got {value!r}")
        results.append(
            EvalResult(
                task_type=task,
                task_name=entry.get("task_name"),
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                dataset_split=dataset.get("split"),
                dataset_config=dataset.get("config"),
                dataset_revision=dataset.get("revision"),
                metric_type=_require(metric, "type", mwhere),
                metric_value=float(value),
                metric_name=metric.get("name"),
            )
        )
    return results


def load_eval_results(source: str | os.PathLike | list | dict) -> list[EvalResult]:
    """Read evaluation results (see the module docstring for the format) into `EvalResult`s.

    Args:
        source: Path of a JSON file, or the already parsed list / `{"results": [...]}` object.

    Returns:
        One `EvalResult` per metric, in file order.

    Raises:
        ValueError: naming the entry and the missing or bad field.
    """
    entries = _read_results_json(source)
    return [result for i, entry in enumerate(entries) for result in _entry_results(entry, f"evaluation result #{i}")]


def eval_results_table(results: list[EvalResult]) -> str:
    """A markdown table of evaluation results (or a sentence saying there are none)."""
    if not results:
        return "No evaluation results were recorded for this model."
    lines = ["| task | dataset | split | metric | value |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.task_name or r.task_type} | {r.dataset_name} | {r.dataset_split or ''} | "
            f"{r.metric_name or r.metric_type} | {r.metric_value:.4g} |"
        )
    return "\n".join(lines)


def to_eval_results(results: EvalResults) -> list[EvalResult] | None:
    """`EvalResult`s from any accepted form of evaluation results (see `EvalResults`); `None` stays `None`."""
    if results is None or (isinstance(results, list) and all(isinstance(r, EvalResult) for r in results) and results):
        return results
    return load_eval_results(results)


def _fmt_number(value: float | None, unit: str = "") -> str:
    return "unknown" if value is None else f"{value:g}{unit}"


def _card_data(
    config: GraftConfig, info: ModelCardInfo, repo_id: str, eval_results: list[EvalResult], base_model: str | None
) -> ModelCardData:
    """The card's YAML metadata (tags, licence, base model, datasets, `model-index`)."""
    tags = ["graft", "clip", "remote-sensing", "satellite-imagery", "geospatial", "zero-shot-image-classification"]
    sensor = SENSORS.get(config.sensor)
    if sensor is not None and sensor.hub_tag:
        tags.append(sensor.hub_tag)
    tags += [t for t in info.tags if t not in tags]
    return ModelCardData(
        language=info.language or None,
        license=info.license,
        library_name="transformers",
        pipeline_tag="zero-shot-image-classification",
        tags=tags,
        base_model=base_model,
        datasets=info.datasets or None,
        model_name=repo_id if eval_results else None,  # model-index needs a name
        eval_results=eval_results or None,
    )


def _architecture(config: GraftConfig) -> str:
    vision = config.vision_config
    arch = ARCH_NAMES.get((vision.hidden_size, vision.num_hidden_layers))
    if arch:
        return f"ViT-{arch[3:].upper()}/{vision.patch_size}"
    return f"ViT (width {vision.hidden_size}, depth {vision.num_hidden_layers}, patch {vision.patch_size})"


def _model_values(config: GraftConfig, log_scale: float) -> dict[str, Any]:
    """Template values that describe the model itself (architecture, sensor, input, logit scale)."""
    vision = config.vision_config
    grid_h, grid_w = config.patch_grid
    sensor = SENSORS.get(config.sensor)
    return {
        "sensor": config.sensor,
        "sensor_name": sensor.display_name if sensor is not None else config.sensor,
        "use_patch_head": bool(config.use_patch_head),
        "image_embeds_trained": bool(getattr(config, "image_embeds_trained", True)),
        "architecture": _architecture(config),
        "projection_dim": config.projection_dim,
        "grid": f"{grid_h} x {grid_w}",
        "image_size": vision.image_size,
        "patch_size": vision.patch_size,
        "patch_ground": _fmt_number(None if config.gsd is None else config.gsd * vision.patch_size, " m"),
        "gsd": _fmt_number(config.gsd, " m/px"),
        "band_names": ", ".join(config.band_names),
        "rgb_band_names": ", ".join(config.band_names[i] for i in config.rgb_bands),
        "value_scale": f"{config.value_scale:g}",
        "value_offset": f"{config.value_offset or 0.0:g}",
        "nodata_value": config.nodata_value,
        "zero_shot_logit_scale": f"{math.exp(log_scale):.4g} (stored in log space: {log_scale:.4f})",
    }


def _training_values(info: ModelCardInfo) -> dict[str, Any]:
    """Template values that describe how the model was made (data, recipe, temperature, source)."""
    temperature = info.training_temperature
    training_table = ""
    if info.training:
        rows = ["| setting | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info.training.items()]
        training_table = "\n".join(rows)
    return {
        "training_temperature": (
            "not recorded" if temperature is None else f"{temperature:g} (logit scale {1.0 / temperature:.4g})"
        ),
        "converted_from": info.converted_from,
        "datasets": info.datasets,
        "training_data": info.training_data,
        "training_recipe": info.training_recipe,
        "training_table": training_table,
    }


def render_model_card(
    config: GraftConfig,
    info: ModelCardInfo | None = None,
    eval_results: list[EvalResult] | None = None,
    logit_scale: float | None = None,
) -> ModelCard:
    """Render the card of a GRAFT model.

    Args:
        config: The model's `GraftConfig`.
        info: Repository, licence, data and recipe details.
        eval_results: Results for the evaluation table and the `model-index` metadata.
        logit_scale: The model's zero-shot `logit_scale` parameter (log space, as CLIP stores it); `None` reports
            `config.logit_scale_init_value`.

    Returns:
        A `huggingface_hub.ModelCard` (`str(card)` is the README text).
    """
    info = info or ModelCardInfo()
    repo_id = info.repo_id or model_repo_name(config)
    eval_results = list(eval_results or [])
    log_scale = config.logit_scale_init_value if logit_scale is None else float(logit_scale)
    base_model = info.base_model or base_model_for_config(config)
    values = {
        "title": repo_id.rsplit("/", 1)[-1],
        "repo_id": repo_id,
        "base_model": base_model,
        "evaluation_table": eval_results_table(eval_results),
        **_model_values(config, log_scale),
        **_training_values(info),
    }
    card_data = _card_data(config, info, repo_id, eval_results, base_model)
    return ModelCard.from_template(card_data, template_path=str(model_card_template_path()), **values)


def parse_card_metadata(card_class: type[RepoCard], text: str, what: str) -> dict[str, Any]:
    """The YAML metadata of a card as huggingface_hub parses it (`ModelCard`, `DatasetCard`).

    Args:
        card_class: `ModelCard` or `DatasetCard` (a model card's `model-index` is parsed into `EvalResult`s).
        text: The README text.
        what: Name of the card in messages (`"model card"`).

    Raises:
        ValueError: No metadata block, or metadata that does not parse.
    """
    if not text.startswith("---\n") or "\n---\n" not in text[3:]:
        raise ValueError(f"{what} must start with a YAML metadata block between '---' lines")
    try:
        card = card_class(text)
    except (yaml.YAMLError, ValueError) as err:
        raise ValueError(f"{what} YAML metadata does not parse: {err}") from err
    return card.data.to_dict()


def check_model_card(text: str) -> dict[str, Any]:
    """Check a rendered model card locally (no network): metadata parses (`model-index` included, with
    huggingface_hub's `ModelCard`), required keys and sections are present, no template marker is left.

    Args:
        text: The README text.

    Returns:
        The card's metadata.

    Raises:
        ValueError: listing every problem found.
    """
    metadata = parse_card_metadata(ModelCard, text, "model card")
    body = text[4:].partition("\n---\n")[2]
    problems = [f"missing metadata key {key!r}" for key in REQUIRED_MODEL_CARD_KEYS if not metadata.get(key)]
    if metadata.get("pipeline_tag") not in (None, "zero-shot-image-classification"):
        problems.append(f"pipeline_tag is {metadata['pipeline_tag']!r}, expected 'zero-shot-image-classification'")
    problems += [f"missing section {s!r}" for s in REQUIRED_MODEL_CARD_SECTIONS if s not in body]
    leftovers = [marker for marker in ("{{", "}}", "{%", "%}") if marker in body]
    if leftovers:
        problems.append(f"unrendered template markers {leftovers}")
    if problems:
        raise ValueError("model card check failed: " + "; ".join(problems))
    return metadata
