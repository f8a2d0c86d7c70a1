"""Question answering about satellite images with programs over GRAFT detections (GRAFT Sec. 3.3, ViperGPT-style).

A planner turns a question of the RSVQA kinds (presence, count, area, comparison) into a program of the tiny
language in :mod:`graft_hf.tasks.vqa_program`; the program runs against a :class:`DetectionScene`, which answers
`exists`/`count`/`area` with GRAFT's zero-shot detector. The built-in :class:`RuleBasedPlanner` parses these
question forms with regular expressions and says "cannot answer" (never guesses) for anything else;
:class:`~graft_hf.tasks.vqa_llm.LLMPlanner` lets a language model write the program instead.

Example:
    >>> qa = VisualQuestionAnswerer(ObjectDetector(model, load_clip_tokenizer()))
    >>> qa.answer("naip_tile.tif", "Are there more buildings than roads?", gsd=1.0)
    VQAAnswer(question='Are there more buildings than roads?', text='yes', value=True,
              program='compare(count("building"), ">", count("road"))', ...)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image, ImageDraw

from graft_hf.evaluation.plots import load_font
from graft_hf.tasks.detection import (
    DetectionConfig,
    DetectionResult,
    ObjectDetector,
    PreparedImage,
    render_detections,
)
from graft_hf.tasks.segmentation import ImageLike, RGBLike
from graft_hf.tasks.vqa_program import Compare, Program, ProgramError, Query, parse_program, run_program

logger = logging.getLogger(__name__)

__all__ = [
    "CannotAnswerError",
    "ChainPlanner",
    "DetectionScene",
    "Planner",
    "RuleBasedPlanner",
    "VQAAnswer",
    "VisualQuestionAnswerer",
    "normalize_object",
    "render_answer",
    "singularize",
]


class CannotAnswerError(ValueError):
    """The question cannot be turned into a program (or the program cannot be run); the message says why."""


class Planner(Protocol):
    """Turns a question into a program, or raises :class:`CannotAnswerError`."""

    def plan(self, question: str) -> Program: ...


_IRREGULAR_PLURALS = {
    "people": "person",
    "men": "man",
    "women": "woman",
    "children": "child",
    "geese": "goose",
    "leaves": "leaf",
    "wolves": "wolf",
    "lives": "life",
    "feet": "foot",
    "mice": "mouse",
    "sheep": "sheep",
    "fish": "fish",
    "cattle": "cattle",
}
_NOT_PLURAL_ENDINGS = ("ss", "us", "is", "ys")


def singularize(word: str) -> str:
    """English singular of a plural noun (a small rule set that covers remote-sensing objects)."""
    lower = word.lower()
    if lower in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[lower]
    if len(lower) > 4 and lower.endswith("ies"):
        return lower[:-3] + "y"
    if lower.endswith(("ches", "shes", "sses", "xes", "zes")):
        return lower[:-2]
    if len(lower) > 3 and lower.endswith("s") and not lower.endswith(_NOT_PLURAL_ENDINGS):
        return lower[:-1]
    return lower


_ARTICLES = re.compile(r"^(?:a|an|the|any|some|several|many|much)\s+")
_LOCATION = re.compile(
    r"\s+(?:(?:in|on|within|inside)\s+(?:the|this)\s+(?:image|picture|photo|photograph|scene|tile)|visible|present)$"
)
_FORBIDDEN_OBJECT_WORDS = {
    "and", "or", "than", "more", "fewer", "less", "number", "how", "what", "which", "where", "why", "not", "no",
    "if", "bigger", "larger", "smaller", "greater", "equal", "same", "as", "least", "most", "at", "exactly",
    "over", "under", "many", "several", "few", "one", "two", "three", "four", "five", "six",
    "seven", "eight", "nine", "ten", "dozen", "hundred",
}  # fmt: skip
# Quantities are conditions, not object names: "at least 3 bridges" must not become exists("at least 3 bridge").
_QUANTITY = re.compile(r"\b\d+(?:[.,]\d+)?\b")


def normalize_object(phrase: str) -> str:
    """Object name for detection from a question's noun phrase: no articles, singular head noun.

    Raises:
        CannotAnswerError: The phrase is empty, too long, or combines objects or conditions.
    """
    text = _LOCATION.sub("", " ".join(phrase.lower().split()))
    text = _ARTICLES.sub("", text).strip(" ,;:")
    words = text.split()
    if not words:
        raise CannotAnswerError("the question names no object")
    if len(words) > 5:
        raise CannotAnswerError(f"object description too long to look for: {text!r}")
    bad = sorted(set(words) & _FORBIDDEN_OBJECT_WORDS) + (["a number"] if _QUANTITY.search(text) else [])
    if bad:
        raise CannotAnswerError(f"{text!r} combines objects or conditions ({', '.join(bad)}); ask about one object")
    if not re.fullmatch(r"[a-z][a-z0-9 '\-]*", text):
        raise CannotAnswerError(f"object name {text!r} has characters other than letters, digits, spaces, hyphens")
    return " ".join(words[:-1] + [singularize(words[-1])])


_OBJ = r"(?P<{}>[a-z][a-z0-9 '\-]*?)"
_MORE = r"more|greater|larger|bigger|higher"
_LESS = r"fewer|less|smaller|lower"
_AREA_OF = r"(?:the\s+)?(?:area|surface)\s+(?:covered|occupied)\s+by"
_AREA_OF_2 = rf"(?:{_AREA_OF}|that\s+(?:covered|occupied)\s+by|the\s+(?:area|surface)\s+of)"


def _patterns() -> list[tuple[re.Pattern[str], str]]:
    a, b, x = _OBJ.format("a"), _OBJ.format("b"), _OBJ.format("x")
    rules = [
        # comparisons of counts
        (rf"are there (?P<cmp>{_MORE}|{_LESS}) {a} than {b}", "count_cmp"),
        (rf"are there as many {a} as {b}", "count_eq"),
        (rf"is the number of {a} (?:equal to|the same as) (?:the number of|that of) {b}", "count_eq"),
        (rf"is the number of {a} (?:different from|not equal to) (?:the number of|that of) {b}", "count_ne"),
        (rf"is the number of {a} (?P<cmp>{_MORE}|{_LESS}) than (?:the number of|that of) {b}", "count_cmp"),
        # comparisons of areas
        (rf"is {_AREA_OF} {a} (?P<cmp>{_MORE}|{_LESS}) than {_AREA_OF_2} {b}", "area_cmp"),
        (rf"is there (?P<cmp>more|less) {a} than {b}", "area_cmp"),
        (rf"does {a} cover (?P<cmp>more|less) (?:area |ground |land )?than {b}", "area_cmp"),
        # counts
        (rf"how many {x}(?: are there| is there| are present| are visible| can be seen| can you see| do you see"
         rf"| exist| are| is| are shown| there are)?", "count"),
        (rf"what is the (?:number|count|amount) of {x}", "count"),
        (rf"count (?:the |all )?{x}", "count"),
        # areas
        (rf"what is the (?:total )?(?:area|surface) (?:covered|occupied) by {x}", "area"),
        (rf"how much (?:area|surface|land|ground) (?:is|do|does) (?:covered|occupied|cover) by {x}", "area"),
        (rf"how much (?:area|surface|land|ground) (?:do|does) {x} (?:cover|occupy)", "area"),
        (rf"what (?:area|surface) (?:do|does) {x} (?:cover|occupy)", "area"),
        (rf"how large is the area (?:covered|occupied) by {x}", "area"),
        # presence
        (rf"(?:is|are) there {x}", "exists"),
        (rf"(?:is|are) {x} (?:present|visible)", "exists"),
        (rf"does (?:the|this) (?:image|picture|scene|tile) (?:contain|show|include) {x}", "exists"),
        (rf"can (?:you|one|we) see {x}", "exists"),
    ]  # fmt: skip
    return [(re.compile(rf"^{p}$"), kind) for p, kind in rules]


_QUESTION_PATTERNS = _patterns()


def _clean_question(question: str) -> str:
    text = " ".join(question.lower().replace("’", "'").split())
    text = text.rstrip(" ?.!")
    return _LOCATION.sub("", text) if not text.endswith(("present", "visible")) else text


@dataclass
class RuleBasedPlanner:
    """Parses presence, count, area and comparison questions with a fixed grammar; never guesses."""

    def plan(self, question: str) -> Program:
        """The program answering `question`.

        Raises:
            CannotAnswerError: The question is not one of the supported kinds; the message lists them.
        """
        if not isinstance(question, str) or not question.strip():
            raise CannotAnswerError("empty question")
        text = _clean_question(question)
        for pattern, kind in _QUESTION_PATTERNS:
            match = pattern.match(text)
            if match is None:
                continue
            groups = match.groupdict()
            if kind in ("exists", "count", "area"):
                return Query(kind, normalize_object(groups["x"]))  # type: ignore[arg-type]
            a, b = normalize_object(groups["a"]), normalize_object(groups["b"])
            function = "area" if kind == "area_cmp" else "count"
            if kind in ("count_eq", "count_ne"):
                op = "==" if kind == "count_eq" else "!="
            else:
                op = ">" if re.fullmatch(_MORE, groups["cmp"]) else "<"
            return Compare(Query(function, a), op, Query(function, b))  # type: ignore[arg-type]
        raise CannotAnswerError(
            f"cannot answer {question!r}: supported questions ask whether an object is present ('Is there a road?'), "
            "how many there are ('How many buildings are there?'), the area they cover ('What is the area covered "
            "by water?') or compare two objects ('Are there more buildings than roads?')"
        )


@dataclass
class ChainPlanner:
    """Tries planners in order (e.g. the rule-based one, then an LLM) and returns the first program."""

    planners: Sequence[Planner]

    def plan(self, question: str) -> Program:
        reasons = []
        for planner in self.planners:
            try:
                return planner.plan(question)
            except CannotAnswerError as err:
                reasons.append(f"{type(planner).__name__}: {err}")
        raise CannotAnswerError("; ".join(reasons) or "no planner configured")


@dataclass
class DetectionScene:
    """The program API over one image, answered by a zero-shot :class:`ObjectDetector` (results are cached).

    Attributes:
        detector: The detector.
        image: The image, read and encoded once.
        config: Detection options shared by every query.
        gsd: Metres per pixel of the image's raster (see `graft_hf.tasks.detection`).
        original_size: `(height, width)` of that raster when the image is a resized copy.
    """

    detector: ObjectDetector
    image: PreparedImage
    config: DetectionConfig = field(default_factory=DetectionConfig)
    gsd: float | None = None
    original_size: tuple[int, int] | None = None
    detections: dict[str, DetectionResult] = field(default_factory=dict)

    def find(self, name: str) -> DetectionResult:
        if name not in self.detections:
            self.detections[name] = self.detector.detect(
                self.image, name, self.config, gsd=self.gsd, original_size=self.original_size
            )
        return self.detections[name]

    def exists(self, name: str) -> bool:
        return self.find(name).count > 0

    def count(self, name: str) -> int:
        return self.find(name).count

    def area(self, name: str) -> float:
        area = self.find(name).total_area_m2
        if area is None:
            raise CannotAnswerError("area questions need the image's ground sample distance: pass gsd=... (m/px)")
        return area


@dataclass
class VQAAnswer:
    """An answer, or an explicit refusal.

    Attributes:
        question: The question asked.
        text: `"yes"`/`"no"`, a count, an area like `"1234 m2"`, or `"cannot answer: <reason>"`.
        value: The program's value (`bool`, `int` or `float`), or `None` when unanswerable.
        program: The program that was run, in the language of `graft_hf.tasks.vqa_program`, or `None`.
        answerable: Whether an answer was produced.
        reason: Why not, when unanswerable.
        detections: The detections the program looked at, by object name (for rendering evidence).
    """

    question: str
    text: str
    value: bool | int | float | None = None
    program: str | None = None
    answerable: bool = True
    reason: str | None = None
    detections: dict[str, DetectionResult] = field(default_factory=dict, repr=False)

    def render(self, image: RGBLike | None = None) -> Image.Image:
        """The evidence as a picture; see :func:`render_answer`."""
        return render_answer(self, image)


def render_answer(answer: VQAAnswer, image: RGBLike | None = None) -> Image.Image:
    """The detections behind an answer drawn on the image, with the question and answer as a caption.

    Args:
        answer: A :class:`VQAAnswer` (its `detections` carry the image unless `image` is given).
        image: uint8 `(height, width, 3)` RGB array or a PIL image; defaults to the detections' image.

    Returns:
        An RGB `PIL.Image.Image`.
    """
    if image is None:
        image = next((d.image for d in answer.detections.values() if d.image is not None), None)
    if image is None:
        raise ValueError("the answer carries no image (no detections were run); pass image=...")
    instances = [inst for result in answer.detections.values() for inst in result.instances]
    picture = render_detections(image, instances)
    font = load_font(max(10, min(18, picture.width // 40)))
    lines = [f"Q: {answer.question}", f"A: {answer.text}"] + ([answer.program] if answer.program else [])
    line_height = int(font.size if hasattr(font, "size") else 12) + 6
    out = Image.new("RGB", (picture.width, picture.height + line_height * len(lines) + 6), "white")
    out.paste(picture, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(lines):
        draw.text((4, picture.height + 3 + i * line_height), text, fill=(0, 0, 0), font=font)
    return out


def format_value(value: bool | int | float) -> str:
    """RSVQA-style answer text: yes/no, an integer, or square metres."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.0f} m2"


class VisualQuestionAnswerer:
    """Answers questions about satellite images by planning a program and running it over detections.

    Args:
        detector: A zero-shot :class:`ObjectDetector`.
        planner: Question -> program; defaults to :class:`RuleBasedPlanner`.
        config: Detection options used by `exists`/`count`/`area`.
    """

    def __init__(
        self, detector: ObjectDetector, planner: Planner | None = None, config: DetectionConfig | None = None
    ) -> None:
        self.detector = detector
        self.planner = planner or RuleBasedPlanner()
        self.config = config or DetectionConfig()

    def answer(
        self,
        image: ImageLike | PreparedImage,
        question: str,
        gsd: float | None = None,
        original_size: tuple[int, int] | None = None,
        program: str | Program | None = None,
    ) -> VQAAnswer:
        """Answers one question (or runs a given program) about one image.

        Args:
            image: A PIL image, an array, a GeoTIFF/image path, or a `PreparedImage`.
            question: The question.
            gsd: Metres per pixel of the image's raster (needed for area questions).
            original_size: `(height, width)` of that raster when the image is a resized copy.
            program: Skip planning and run this program (text or parsed).

        Returns:
            A :class:`VQAAnswer`; unanswerable questions give `answerable=False` and the reason, never a guess.
        """
        try:
            if program is None:
                parsed = self.planner.plan(question)
            else:
                parsed = parse_program(program) if isinstance(program, str) else program
        except (CannotAnswerError, ProgramError) as err:
            logger.info("cannot answer %r: %s", question, err)
            return VQAAnswer(question, f"cannot answer: {err}", answerable=False, reason=str(err))
        scene = DetectionScene(self.detector, self.detector.prepare(image), self.config, gsd, original_size)
        try:
            value = run_program(parsed, scene)
        except CannotAnswerError as err:
            return VQAAnswer(question, f"cannot answer: {err}", None, str(parsed), False, str(err), scene.detections)
        logger.info("%r -> %s -> %r", question, parsed, value)
        return VQAAnswer(question, format_value(value), value, str(parsed), detections=scene.detections)
