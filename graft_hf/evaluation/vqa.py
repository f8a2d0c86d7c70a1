"""RSVQA-HR evaluation of GRAFT's question answering (the protocol of the paper's Table 4).

RSVQA (Lobry et al., 2020) ships each split as three JSON files, `{prefix}_split_{split}_questions.json`,
`..._answers.json` and `..._images.json` (prefix `USGS` for the high-resolution set), holding
`{"questions": [{"id", "img_id", "type", "question", "answers_ids", "active", ...}]}`,
`{"answers": [{"id", "question_id", "answer", "active", ...}]}` and `{"images": [{"id", "questions_ids", "active",
...}]}`. Every list covers all ids of the whole dataset; entries of other splits are placeholders `{"id": N,
"active": false}`, so only active entries are read. High-resolution question types are `presence`, `comp`
(comparison), `count` and `area`; yes/no answers are compared as words, counts as whole numbers (the HR set keeps
counts exact: its answer vocabulary lists each count), and areas, stored as `"<N>m2"`, in the dataset's five bins
(`0m2`, `between 0m2 and 10m2`, `between 10m2 and 100m2`, `between 100m2 and 1000m2`, `more than 1000m2`), as the
RSVQA loaders do. `count_buckets=True` bins counts the way the low-resolution set does (`0`, `between 1 and 10`,
`between 11 and 100`, `between 101 and 1000`, `more than 1000`).

The paper samples 500 test questions and answers them on NAIP images of the same places, so images come from any
:class:`ImageSource` by image id (:class:`FolderImageSource` reads `{id}.tif`-style files from a folder). Accuracy
is reported per question type and averaged over the types (the average accuracy of RSVQA and of Table 4), next to
the overall accuracy; a refused or unanswerable question counts as wrong.
"""

import json
import logging
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from graft_hf.config import ConfigError, config_dataclass, require
from graft_hf.io import atomic_write, write_json

logger = logging.getLogger(__name__)

__all__ = [
    "HR_QUESTION_TYPES",
    "FolderImageSource",
    "ImageSource",
    "RSVQAQuestion",
    "VQAEvalConfig",
    "VQAEvalReport",
    "area_bucket",
    "count_bucket",
    "evaluate_vqa",
    "load_rsvqa",
    "predicted_answer",
    "reference_answer",
    "run_vqa_eval",
    "sample_questions",
]

#: RSVQA-HR's question types, with the names the paper's table uses.
HR_QUESTION_TYPES: dict[str, str] = {"presence": "presence", "comp": "comparison", "count": "count", "area": "area"}
_AREA_BINS = ("0m2", "between 0m2 and 10m2", "between 10m2 and 100m2", "between 100m2 and 1000m2", "more than 1000m2")
_COUNT_BINS = ("0", "between 1 and 10", "between 11 and 100", "between 101 and 1000", "more than 1000")


@dataclass(frozen=True)
class RSVQAQuestion:
    """One active question of a split with its reference answer.

    Attributes:
        id: Question id.
        image_id: Id of the image it is about.
        type: `presence`, `comp`, `count`, `area` (or another type of the file).
        question: The question text.
        answer: The reference answer as stored (`"yes"`, `"4"`, `"123m2"`, ...).
    """

    id: int
    image_id: int
    type: str
    question: str
    answer: str


def _split_file(root: Path, prefix: str, split: str, kind: str) -> list[dict[str, Any]]:
    path = root / f"{prefix}_split_{split}_{kind}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; data must be the RSVQA folder holding {prefix}_split_{split}_{{questions,answers,"
            f"images}}.json (RSVQA-HR: prefix 'USGS', splits train, val, test, test_phili)"
        )
    content = json.loads(path.read_text())
    if not isinstance(content, dict) or not isinstance(content.get(kind), list):
        raise ValueError(f"{path} is not an RSVQA {kind} file: expected {{{kind!r}: [...]}}")
    return [entry for entry in content[kind] if isinstance(entry, dict) and entry.get("active")]


def load_rsvqa(
    root: str | Path, split: str = "test", prefix: str = "USGS"
) -> tuple[list[RSVQAQuestion], dict[str, int]]:
    """The active questions of an RSVQA split with their answers.

    Args:
        root: Folder holding the split's three JSON files.
        split: `train`, `val`, `test` or `test_phili` (RSVQA-HR).
        prefix: `USGS` (RSVQA-HR) or `LR`.

    Returns:
        `(questions sorted by id, {reason: count} of active questions skipped as inconsistent)`.

    Raises:
        FileNotFoundError: A split file is missing. ValueError: A file is not in RSVQA's layout.
    """
    root = Path(root)
    questions = _split_file(root, prefix, split, "questions")
    answers = {entry["id"]: entry for entry in _split_file(root, prefix, split, "answers") if "id" in entry}
    images = {entry["id"]: entry for entry in _split_file(root, prefix, split, "images") if "id" in entry}
    loaded, skipped = [], Counter()
    for entry in questions:
        missing = {"id", "img_id", "type", "question", "answers_ids"} - set(entry)
        if missing:
            skipped[f"question without {sorted(missing)[0]}"] += 1
            continue
        answer = answers.get(entry["answers_ids"][0]) if entry["answers_ids"] else None
        image = images.get(entry["img_id"])
        if answer is None or answer.get("question_id") != entry["id"]:
            skipped["no active answer for the question"] += 1
        elif image is None:
            skipped["its image is not active in the split"] += 1
        elif "questions_ids" in image and entry["id"] not in image["questions_ids"]:
            skipped["its image does not list it"] += 1
        else:
            loaded.append(
                RSVQAQuestion(
                    int(entry["id"]),
                    int(entry["img_id"]),
                    str(entry["type"]),
                    str(entry["question"]),
                    str(answer["answer"]),
                )  # fmt: skip
            )
    if skipped:
        logger.warning("%s/%s split %s: skipped %s", root, prefix, split, dict(skipped))
    return sorted(loaded, key=lambda q: q.id), dict(skipped)


def sample_questions(
    questions: Sequence[RSVQAQuestion], num_questions: int | None, seed: int = 0, types: Sequence[str] | None = None
) -> list[RSVQAQuestion]:
    """`num_questions` questions drawn without replacement with `seed` (all when `None`), of `types` only."""
    pool = sorted((q for q in questions if types is None or q.type in types), key=lambda q: q.id)
    if num_questions is None or num_questions >= len(pool):
        return pool
    return sorted(random.Random(seed).sample(pool, num_questions), key=lambda q: q.id)


def area_bucket(square_metres: float) -> str:
    """RSVQA-HR's area bin of an area: `0m2`, then (0, 10], (10, 100], (100, 1000] and more than 1000 m2."""
    for bound, name in zip((0, 10, 100, 1000), _AREA_BINS):
        if square_metres <= bound:
            return name
    return _AREA_BINS[-1]


def count_bucket(count: int) -> str:
    """RSVQA-LR's count bin: `0`, then 1-10, 11-100, 101-1000 and more than 1000."""
    for bound, name in zip((0, 10, 100, 1000), _COUNT_BINS):
        if count <= bound:
            return name
    return _COUNT_BINS[-1]


def reference_answer(question: RSVQAQuestion, count_buckets: bool = False) -> str:
    """The reference answer in the form predictions are compared in (yes/no, a count or its bin, an area bin)."""
    text = question.answer.strip().lower()
    if question.type == "area":
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*m2", text)
        if match:
            return area_bucket(float(match[1]))
        if text in _AREA_BINS:
            return text
        raise ValueError(f"area answer {question.answer!r} of question {question.id} is neither 'Nm2' nor a bin")
    if question.type == "count" and re.fullmatch(r"\d+", text):
        return count_bucket(int(text)) if count_buckets else str(int(text))
    return text


def predicted_answer(question_type: str, value: Any, count_buckets: bool = False) -> str | None:
    """A program's value in the reference's form, or `None` when it cannot answer a question of this type."""
    if question_type in ("presence", "comp"):
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
            return value.strip().lower()
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if question_type == "area":
        return area_bucket(float(value))
    if question_type == "count":
        if float(value) != int(value) or value < 0:
            return None
        return count_bucket(int(value)) if count_buckets else str(int(value))
    return str(value).lower()


class ImageSource(Protocol):
    """Gives the image of an RSVQA image id and its ground sample distance."""

    def load(self, image_id: int) -> tuple[Any, float | None]:
        """`(image, gsd)`: anything `ObjectDetector.prepare` accepts, and metres per pixel (`None`: unknown)."""
        ...


@dataclass
class FolderImageSource:
    """Images named by id in a folder (RSVQA's own `Data/{id}.tif`, or NAIP crops of the same places).

    Attributes:
        root: The folder.
        pattern: File name of an image id, with `{id}`.
        gsd: Metres per pixel of the files; `None` reads it from each GeoTIFF (projected CRS) when it can.
    """

    root: str | Path
    pattern: str = "{id}.tif"
    gsd: float | None = None

    def load(self, image_id: int) -> tuple[Any, float | None]:
        path = Path(self.root) / self.pattern.format(id=image_id)
        if not path.is_file():
            raise FileNotFoundError(f"no image for id {image_id}: {path}")
        if self.gsd is not None or path.suffix.lower() not in (".tif", ".tiff"):
            return str(path), self.gsd
        import rasterio

        from graft_hf.tasks.tiling import raster_gsd_metres

        with rasterio.open(path) as dataset:
            return str(path), raster_gsd_metres(dataset)


@dataclass
class VQAEvalReport:
    """Results of an evaluation.

    Attributes:
        records: One JSON-ready record per question (question, reference, prediction, program, correct, ...).
        skipped: Questions not asked, by reason (e.g. their image is missing).
    """

    records: list[dict[str, Any]]
    skipped: dict[str, int] = field(default_factory=dict)

    def per_type(self) -> dict[str, dict[str, Any]]:
        """`{type: {"accuracy", "correct", "total", "unanswerable"}}` in RSVQA-HR's type order."""
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in self.records:
            groups[record["type"]].append(record)
        order = [t for t in HR_QUESTION_TYPES if t in groups] + sorted(set(groups) - set(HR_QUESTION_TYPES))
        return {
            t: {
                "accuracy": sum(r["correct"] for r in groups[t]) / len(groups[t]),
                "correct": sum(r["correct"] for r in groups[t]),
                "total": len(groups[t]),
                "unanswerable": sum(not r["answerable"] for r in groups[t]),
            }
            for t in order
        }

    @property
    def average_accuracy(self) -> float | None:
        """Mean of the per-type accuracies (Table 4's average), `None` without questions."""
        per_type = self.per_type()
        return sum(v["accuracy"] for v in per_type.values()) / len(per_type) if per_type else None

    @property
    def overall_accuracy(self) -> float | None:
        return sum(r["correct"] for r in self.records) / len(self.records) if self.records else None

    def summary(self) -> dict[str, Any]:
        return {
            "questions": len(self.records),
            "per_type": self.per_type(),
            "average_accuracy": self.average_accuracy,
            "overall_accuracy": self.overall_accuracy,
            "skipped": self.skipped,
        }

    def markdown(self) -> str:
        """The Table-4-style table: accuracy per question type and the average."""
        lines = ["| question type | accuracy | correct / total | unanswerable |", "|---|---:|---:|---:|"]
        for name, row in self.per_type().items():
            label = HR_QUESTION_TYPES.get(name, name)
            lines.append(
                f"| {label} | {row['accuracy']:.2%} | {row['correct']} / {row['total']} | {row['unanswerable']} |"
            )
        if self.records:
            lines.append(f"| **average** | **{self.average_accuracy:.2%}** | | |")
            lines.append(f"| overall | {self.overall_accuracy:.2%} | {sum(r['correct'] for r in self.records)} / "
                         f"{len(self.records)} | |")  # fmt: skip
        if self.skipped:
            lines.append("")
            lines.append("Skipped: " + ", ".join(f"{n} ({reason})" for reason, n in self.skipped.items()) + ".")
        return "\n".join(lines) + "\n"


def evaluate_vqa(
    answerer: Any,
    questions: Sequence[RSVQAQuestion],
    source: ImageSource,
    count_buckets: bool = False,
    progress: bool = True,
) -> VQAEvalReport:
    """Asks every question on its image and scores the answers.

    Args:
        answerer: A `graft_hf.tasks.vqa.VisualQuestionAnswerer` (its planner writes the programs).
        questions: The questions (e.g. from :func:`sample_questions`).
        source: Where the image of each image id comes from.
        count_buckets: Compare counts in RSVQA-LR's bins instead of exactly.
        progress: Show a progress bar.

    Returns:
        A :class:`VQAEvalReport`; questions whose image cannot be read are skipped and counted by reason.
    """
    from graft_hf.tasks.vqa import CannotAnswerError, VQAAnswer

    by_image: dict[int, list[RSVQAQuestion]] = defaultdict(list)
    for question in questions:
        by_image[question.image_id].append(question)
    records, skipped = [], Counter()
    bar = tqdm(total=len(questions), desc="RSVQA questions", unit="q", disable=not progress)
    for image_id in sorted(by_image):
        asked = by_image[image_id]
        try:
            image, gsd = source.load(image_id)
            scene = answerer.scene(image, gsd)
        except (FileNotFoundError, OSError, ValueError) as err:
            reason = "image missing" if isinstance(err, FileNotFoundError) else "image unreadable"
            logger.warning("image %s: %s (%d questions skipped)", image_id, err, len(asked))
            skipped[reason] += len(asked)
            bar.update(len(asked))
            continue
        for question in asked:
            try:
                answer = answerer.run(scene, question.question, answerer.plan(question.question))
            except CannotAnswerError as err:
                answer = VQAAnswer(question.question, f"cannot answer: {err}", answerable=False, reason=str(err))
            records.append(_record(question, answer, count_buckets))
            bar.update(1)
    bar.close()
    return VQAEvalReport(records, dict(skipped))


def _record(question: RSVQAQuestion, answer: Any, count_buckets: bool) -> dict[str, Any]:
    reference = reference_answer(question, count_buckets)
    prediction = predicted_answer(question.type, answer.value, count_buckets) if answer.answerable else None
    return {
        "id": question.id,
        "image_id": question.image_id,
        "type": question.type,
        "question": question.question,
        "answer": question.answer,
        "reference": reference,
        "prediction": prediction,
        "value": answer.value,
        "text": answer.text,
        "answerable": answer.answerable,
        "reason": answer.reason,
        "program": answer.program,
        "steps": answer.stats.steps if answer.stats is not None else None,
        "correct": prediction is not None and prediction == reference,
    }


@config_dataclass
class VQAEvalConfig:
    """`graft eval-vqa`: GRAFT's question answering on an RSVQA split (the paper's Table 4 protocol).

    Attributes:
        model: Pixel-level GRAFT model directory or Hub id.
        data: RSVQA folder holding `{prefix}_split_{split}_{questions,answers,images}.json`.
        output_dir: Where results.json, results.md and predictions.jsonl are written.
        split: Split to evaluate (`test`, `test_phili`, `val`, `train`).
        prefix: File-name prefix of the split files (`USGS` for RSVQA-HR).
        images: Folder with one image per image id; `None` uses RSVQA's own `Data` folder inside `data`.
        image_pattern: File name of an image id in `images`, with `{id}` (e.g. `naip_{id}.tif`).
        gsd: Metres per pixel of those images when the files do not say (RSVQA-HR's aerial images: 0.15).
        num_questions: Questions to sample (the paper's protocol: 500); `None` asks every question of the types.
        seed: Seed of the question sample.
        types: Question types to ask.
        count_buckets: Compare counts in RSVQA-LR's bins instead of exactly.
        templates: Prompt-template set of the detector's queries (`None`: the concept names as written).
        threshold: Detection score threshold.
        sam: SAM model directory or Hub id to refine every found region with; `None` for none.
        device: `auto`, `cpu`, `cuda`, ...
    """

    model: str
    data: str
    output_dir: str
    split: str = "test"
    prefix: str = "USGS"
    images: str | None = None
    image_pattern: str = "{id}.tif"
    gsd: float | None = None
    num_questions: int | None = 500
    seed: int = 0
    types: tuple[str, ...] = ("presence", "comp", "count", "area")
    count_buckets: bool = False
    templates: str | None = "satellite"
    threshold: float = 0.2
    sam: str | None = None
    device: str = "auto"

    def validate_values(self) -> None:
        require(self.num_questions is None or self.num_questions >= 1, "num_questions", "must be at least 1")
        require(self.gsd is None or self.gsd > 0, "gsd", f"must be positive metres per pixel, got {self.gsd}")
        require("{id}" in self.image_pattern, "image_pattern", f"must contain {{id}}, got {self.image_pattern!r}")
        require(bool(self.types), "types", "name at least one question type")


def run_vqa_eval(config: VQAEvalConfig, planner: Any = None, vqa_config: Any = None) -> VQAEvalReport:
    """Runs the evaluation a config describes and writes its results.

    Args:
        config: The job.
        planner: Question -> program (`graft_hf.tasks.vqa.Planner`); `None` uses the rule-based planner.
        vqa_config: Program limits (`graft_hf.tasks.vqa.VQAConfig`); `None` uses the defaults.

    Returns:
        The report; `output_dir` receives `results.json` (config, per-type and average accuracy), `results.md` (the
        table) and `predictions.jsonl` (one record per question).
    """
    from graft_hf.tasks.detection import DetectionConfig, ObjectDetector
    from graft_hf.tasks.map_setup import load_map_model
    from graft_hf.tasks.sam import load_sam
    from graft_hf.tasks.vqa import VisualQuestionAnswerer

    questions, inconsistent = load_rsvqa(config.data, config.split, config.prefix)
    unknown = sorted(set(config.types) - {q.type for q in questions})
    if unknown:
        known = sorted({q.type for q in questions})
        raise ConfigError("types", f"{unknown} do not occur in the {config.split} split (its types: {known})")
    sampled = sample_questions(questions, config.num_questions, config.seed, config.types)
    model, image_processor, tokenizer = load_map_model(config.model, config.device)
    if not model.config.use_patch_head:
        raise ConfigError("model", f"{config.model} is an image-level GRAFT model; question answering needs a "
                          "pixel-level one (use_patch_head=True)")  # fmt: skip
    sam = load_sam(config.sam, device=model.device) if config.sam else None
    detector = ObjectDetector(model, tokenizer, image_processor, sam=sam)
    detection = DetectionConfig(templates=config.templates, threshold=config.threshold, refine_with_sam=sam is not None)
    answerer = VisualQuestionAnswerer(detector, planner, detection, vqa_config)
    images = config.images if config.images is not None else str(Path(config.data) / "Data")
    report = evaluate_vqa(
        answerer, sampled, FolderImageSource(images, config.image_pattern, config.gsd), config.count_buckets
    )
    report.skipped = {**inconsistent, **report.skipped}
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    from graft_hf.config import config_to_dict

    write_json(out / "results.json", {"config": config_to_dict(config), **report.summary()})
    atomic_write(out / "results.md", report.markdown())
    atomic_write(out / "predictions.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in report.records))
    logger.info("RSVQA %s: average accuracy %s over %d questions", config.split, report.average_accuracy, len(sampled))
    return report
