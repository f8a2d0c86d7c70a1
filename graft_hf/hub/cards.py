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

How each figure was measured travels with it: the number of images (`dataset.num_images`) and the prompt templates
(`templates`) of an entry, or of the whole file (`{"dataset": {"num_images": 200, ...}, "templates": [...],
"results": [...]}`, what `graft eval` writes as `results.json`). Every metric becomes one :class:`EvalRecord` (a
`huggingface_hub.EvalResult` that also carries them); the card's `model-index` is built from them and its
evaluation table states dataset, split, number of images and templates of every figure ("not recorded" where the
JSON does not say).

The card states only what the model's config and its training records say (see `graft_hf.hub.records`): teacher,
text tower, initialisation, targets and data; what no record says is rendered as "not recorded".
"""

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData, RepoCard

from graft_hf.config import config_dataclass
from graft_hf.hub.naming import ARCH_NAMES, model_repo_name
from graft_hf.modeling import SENSORS, GraftConfig
from graft_hf.resources import hub_card_template

logger = logging.getLogger(__name__)

__all__ = [
    "EvalRecord",
    "EvalResults",
    "REQUIRED_MODEL_CARD_KEYS",
    "REQUIRED_MODEL_CARD_SECTIONS",
    "ModelCardInfo",
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


@dataclass
class EvalRecord(EvalResult):
    """An `EvalResult` with how the figure was measured (the model-index keeps the `EvalResult` fields only).

    Attributes:
        num_images: Images the figure was computed on, `None` when not recorded.
        templates: Prompt templates of the class names, `None` when not recorded.
    """

    num_images: int | None = None
    templates: list[str] | None = None


@config_dataclass
class ModelCardInfo:
    """What the card says beyond the config: where the model lives and how it was made, as its records say.

    Everything about the training is `None` (rendered "not recorded") until a record fills it:
    `graft_hf.hub.records.card_info_from_train_config` reads a `graft train` run (config and log),
    `graft_hf.hub.convert` fills what an authors' checkpoint is known to be.

    Attributes:
        repo_id: Hub id the card refers to (used in the code examples and as `model_name`); `None` uses
            `model_repo_name(config)`.
        license: SPDX-like Hub licence id of the weights.
        base_model: Hub id of the model whose weights it starts from (the `base_model` metadata); only for a
            student initialised from that model.
        datasets: Hub ids of the training datasets (pairs datasets).
        teacher: The frozen teacher whose embeddings were the targets (a CLIP for image targets, the text encoder
            for text targets).
        initialisation: How the satellite tower started: `from_clip` (a copy of the teacher CLIP) or `scratch`.
        targets: What the teacher embedded: `image` (the ground photos), `text` (their texts, the alt-text mode) or
            `image+text`.
        data: Whether the ground observations are `real` photos or `simulated` (e.g. the EuroSAT benchmarks').
        training_data: Free text about the training data, shown after what the records say.
        training_recipe: Free text about the recipe, shown after what the records say.
        training: Recipe hyper-parameters shown as a table (e.g. `{"epochs": 10, "batch size": 256}`).
        training_steps: Optimizer steps the training log recorded.
        training_temperature: Temperature of the GRAFT contrastive loss (logit scale 1 / temperature during
            training); zero-shot logits use the model's own logit scale.
        converted_from: Description of a converted source checkpoint.
        tags: Extra Hub tags.
        language: Languages of the text tower.
    """

    repo_id: str | None = None
    license: str = "apache-2.0"
    base_model: str | None = None
    datasets: list[str] = field(default_factory=list)
    teacher: str | None = None
    initialisation: Literal["from_clip", "scratch"] | None = None
    targets: Literal["image", "text", "image+text"] | None = None
    data: Literal["real", "simulated"] | None = None
    training_data: str | None = None
    training_recipe: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    training_steps: int | None = None
    training_temperature: float | None = None
    converted_from: str | None = None
    tags: list[str] = field(default_factory=list)
    language: list[str] = field(default_factory=lambda: ["en"])


def model_card_template_path() -> Path:
    """Location of the model_card.md template (see `graft_hf.resources.hub_card_template`)."""
    return hub_card_template("model_card.md")


def _require(entry: dict, key: str, where: str) -> Any:
    if key not in entry or entry[key] in (None, ""):
        raise ValueError(f"{where} has no {key!r}; see graft_hf.hub.cards for the evaluation JSON format")
    return entry[key]


def _read_results_json(source: str | os.PathLike | list | dict) -> tuple[list, dict[str, Any]]:
    """The result entries of an evaluation JSON (file or parsed) and the file-wide `num_images` / `templates`."""
    data: Any = source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"evaluation JSON {path} not found")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"evaluation JSON {path} is not valid JSON: {err}") from err
    shared: dict[str, Any] = {}
    if isinstance(data, dict):
        dataset = data.get("dataset") if isinstance(data.get("dataset"), dict) else {}
        shared = {"num_images": dataset.get("num_images"), "templates": data.get("templates")}
        data = _require(data, "results", "evaluation JSON object")
    if not isinstance(data, list):
        raise ValueError(
            f"evaluation JSON must be a list of results or {{'results': [...]}}, got {type(data).__name__}"
        )
    return data, shared


def _measurement(entry: dict, dataset: dict, shared: dict[str, Any], where: str) -> dict[str, Any]:
    """`num_images` and `templates` of one entry (its own, else the file's), checked."""
    num_images = dataset.get("num_images", shared.get("num_images"))
    templates = entry.get("templates", shared.get("templates"))
    if num_images is not None and (isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1):
        raise ValueError(f"{where}: 'num_images' must be a positive integer, got {num_images!r}")
    if templates is not None and (
        not isinstance(templates, list) or not all(isinstance(t, str) and t.count("{}") == 1 for t in templates)
    ):
        raise ValueError(f"{where}: 'templates' must be a list of strings with one '{{}}' each, got {templates!r}")
    return {"num_images": num_images, "templates": list(templates) if templates else None}


def _entry_results(entry: Any, where: str, shared: dict[str, Any]) -> list[EvalRecord]:
    """One `EvalRecord` per metric of one result entry."""
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object, got {type(entry).__name__}")
    task = _require(entry, "task", where)
    dataset = _require(entry, "dataset", where)
    if not isinstance(dataset, dict):
        raise ValueError(f"{where}: 'dataset' must be an object with 'name' and 'type'")
    dataset_type = _require(dataset, "type", f"{where} dataset")
    dataset_name = _require(dataset, "name", f"{where} dataset")
    measurement = _measurement(entry, dataset, shared, where)
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
            EvalRecord(
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
                **measurement,
            )
        )
    return results


def load_eval_results(source: str | os.PathLike | list | dict) -> list[EvalRecord]:
    """Read evaluation results (see the module docstring for the format) into `EvalRecord`s.

    Args:
        source: Path of a JSON file (e.g. the `results.json` of `graft eval`), or the already parsed list /
            `{"results": [...]}` object.

    Returns:
        One `EvalRecord` per metric, in file order, with the number of images and templates where recorded.

    Raises:
        ValueError: naming the entry and the missing or bad field.
    """
    entries, shared = _read_results_json(source)
    return [
        result for i, entry in enumerate(entries) for result in _entry_results(entry, f"evaluation result #{i}", shared)
    ]


def eval_results_table(results: list[EvalResult]) -> str:
    """A markdown table of evaluation results (or a sentence saying there are none).

    Every figure states its dataset, split, number of images and prompt templates ("not recorded" where the
    results do not say, e.g. plain `EvalResult`s parsed from another card).
    """
    if not results:
        return "No evaluation results were recorded for this model."
    template_sets: list[tuple[str, ...]] = []
    lines = [
        "| task | dataset | split | images | templates | metric | value |",
        "|---|---|---|---:|---|---|---:|",
    ]
    for r in results:
        num_images, templates = getattr(r, "num_images", None), tuple(getattr(r, "templates", None) or ())
        if templates and templates not in template_sets:
            template_sets.append(templates)
        label = f"{len(templates)} (set {template_sets.index(templates) + 1})" if templates else "not recorded"
        lines.append(
            f"| {r.task_name or r.task_type} | {r.dataset_name} | {r.dataset_split or 'not recorded'} | "
            f"{'not recorded' if num_images is None else num_images} | {label} | {r.metric_name or r.metric_type} | "
            f"{r.metric_value:.4g} |"
        )
    for number, templates in enumerate(template_sets, start=1):
        lines += ["", f"Template set {number}: " + ", ".join(f"`{t}`" for t in templates)]
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
    tags = ["graft", "remote-sensing", "satellite-imagery", "geospatial", "zero-shot-image-classification"]
    if config.text_model_type == _CLIP_TEXT:
        tags.insert(1, "clip")
    if info.data == "simulated":
        tags.append("simulated-data")
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


_CLIP_TEXT = "clip_text_model"
_NOT_RECORDED = "not recorded"
_TARGETS = {
    "image": "the teacher's image embeddings of the ground photos taken inside each satellite image",
    "text": (
        "the teacher's text embeddings of the ground observations inside each satellite image (the texts of the "
        "photos: the paper's alt-text mode, sec. 4.4)"
    ),
    "image+text": (
        "the teacher's image embeddings of the ground photos, with an auxiliary loss on the text embeddings of their "
        "texts"
    ),
}
_DATA = {
    "real": (
        "Real ground photos paired with satellite images: each satellite tile is paired with the geotagged photos "
        "taken inside it."
    ),
    "simulated": (
        "Simulated ground observations, not photos: each training image is paired with short texts of what a person "
        "on the ground would photograph, drawn from per-class pools with unrelated distractors mixed in and placed "
        "at random pixels. The figures below measure transfer through the text encoder in this controlled setting, "
        "not performance on real photo-derived supervision."
    ),
}


def _text_tower_values(config: GraftConfig, info: ModelCardInfo) -> dict[str, Any]:
    """What the card says about the text tower: its source (config or records), its pooling, whether it is real."""
    clip = config.text_model_type == _CLIP_TEXT
    kind = "CLIP text transformer" if clip else f"{config.text_model_type} text encoder"
    name = config.text_tower_name
    if name:
        source, trained = f"`{name}` ({kind})", True
    elif clip and info.initialisation == "from_clip":
        source, trained = f"the teacher CLIP's{f' (`{info.teacher}`)' if info.teacher else ''} ({kind})", True
    elif info.initialisation == "scratch":
        source, trained = f"a {kind} with random weights (no record names a source for it)", False
    else:
        source, trained = f"a {kind} whose source is not recorded", True
    pooling = {"pooler": "the encoder's pooled output", "mean": "attention-masked mean", "cls": "first token"}
    details = [pooling[config.text_pooling]]
    details.append(f"projection to {config.projection_dim}-d" if config.use_text_projection else "no projection")
    if config.text_normalize:
        details.append("L2-normalised")
    return {
        "text_tower": source,
        "text_tower_details": ", ".join(details),
        "text_tower_trained": trained,
        "text_tower_short": f"`{name}`"
        if name
        else ("CLIP's text transformer" if clip and trained else "source not recorded"),
    }


def _recipe_values(config: GraftConfig, info: ModelCardInfo) -> dict[str, Any]:
    """What the card says about the training: teacher, initialisation, targets, data, as recorded."""
    level = "pixel level (paper eq. 3)" if config.use_patch_head else "image level (paper eq. 2)"
    initialisation = {
        "from_clip": f"a copy of the teacher CLIP{f' (`{info.teacher}`)' if info.teacher else ''}",
        "scratch": "random weights (trained from scratch)",
    }.get(info.initialisation or "", _NOT_RECORDED)
    targets = _TARGETS.get(info.targets or "")
    recipe = [
        f"The satellite tower started from {initialisation}."
        if info.initialisation
        else "How the satellite tower was initialised is not recorded.",
        f"It was trained at the {level} with GRAFT's contrastive loss against {targets}; the text tower stayed frozen."
        if targets
        else "Its training targets are not recorded.",
    ]
    if info.training_steps:
        recipe.append(f"The training log records {info.training_steps} optimizer steps.")
    if info.training_recipe:
        recipe.append(info.training_recipe)
    data = [_DATA.get(info.data or "", "Whether the ground observations are real or simulated is not recorded.")]
    if info.training_data:
        data.append(info.training_data)
    return {
        "teacher": f"`{info.teacher}`" if info.teacher else _NOT_RECORDED,
        "initialisation": initialisation,
        "targets": targets or _NOT_RECORDED,
        "targets_kind": info.targets,
        "data_kind": info.data or _NOT_RECORDED,
        "simulated": info.data == "simulated",
        "training_recipe": " ".join(recipe),
        "training_data": " ".join(data),
    }


def _training_values(info: ModelCardInfo) -> dict[str, Any]:
    """Template values of the recipe table, training temperature and converted source."""
    temperature = info.training_temperature
    training_table = ""
    if info.training:
        rows = ["| setting | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info.training.items()]
        training_table = "\n".join(rows)
    return {
        "training_temperature": (
            _NOT_RECORDED if temperature is None else f"{temperature:g} (logit scale {1.0 / temperature:.4g})"
        ),
        "converted_from": info.converted_from,
        "datasets": info.datasets,
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
        info: Repository, licence, and what the training records say (teacher, initialisation, targets, data);
            what they do not say is rendered as "not recorded".
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
    base_model = info.base_model if info.initialisation in (None, "from_clip") else None
    values = {
        "title": repo_id.rsplit("/", 1)[-1],
        "repo_id": repo_id,
        "evaluation_table": eval_results_table(eval_results),
        **_model_values(config, log_scale),
        **_text_tower_values(config, info),
        **_recipe_values(config, info),
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
