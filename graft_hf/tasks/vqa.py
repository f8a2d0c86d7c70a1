"""Question answering about satellite images the way GRAFT does it (Sec. 3.3): a program over GRAFT's detections.

A planner turns a question into a program in ViperGPT's form (`def execute_command(image):` over the image API of
:mod:`graft_hf.tasks.vqa_api`, checked by :mod:`graft_hf.tasks.vqa_program`); the interpreter of
:mod:`graft_hf.tasks.vqa_interpreter` runs it on the image, where `find` is GRAFT's zero-shot detector (GLIP's role
in ViperGPT), sharpened by SAM when one is given. The built-in :class:`RuleBasedPlanner` writes programs for the
RSVQA question kinds (presence, count, area, comparison), also restricted to a part of the image ("at the top of
the image") or related to another object ("on the left of a road", "next to a river"), and says "cannot answer"
(never guesses) for anything else; :class:`~graft_hf.tasks.vqa_llm.LLMPlanner` lets a language model write the
program instead.

Example:
    >>> qa = VisualQuestionAnswerer(ObjectDetector(model, load_clip_tokenizer()))
    >>> answer = qa.answer("naip_tile.tif", "Are there more buildings than roads?", gsd=1.0)
    >>> answer.text, answer.program
    ('yes', 'def execute_command(image):\n    image_patch = ImagePatch(image)\n    return ...')
"""

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image, ImageDraw

from graft_hf.config import config_dataclass, require
from graft_hf.evaluation.plots import load_font
from graft_hf.tasks.detection import DetectionConfig, DetectionResult, ObjectDetector, PreparedImage, render_detections
from graft_hf.tasks.segmentation import ImageLike, RGBLike
from graft_hf.tasks.vqa_api import Area, CannotAnswerError, ImageScene
from graft_hf.tasks.vqa_interpreter import Answer, ProgramStats, run_program
from graft_hf.tasks.vqa_program import Program, ProgramError, parse_program, viper_program

logger = logging.getLogger(__name__)

__all__ = [
    "CannotAnswerError",
    "ChainPlanner",
    "Planner",
    "RuleBasedPlanner",
    "VQAAnswer",
    "VQAConfig",
    "VisualQuestionAnswerer",
    "format_value",
    "normalize_object",
    "render_answer",
    "singularize",
]


class Planner(Protocol):
    """Turns a question into a checked program, or raises :class:`CannotAnswerError`."""

    def plan(self, question: str) -> Program: ...


@config_dataclass
class VQAConfig:
    """Options of question answering: the limits every program runs under, and the spatial API.

    Attributes:
        max_steps: Statements and expressions a program may evaluate before it is stopped.
        time_limit_s: Seconds a program may run, its API calls (detections) included.
        max_concepts: Different concepts one program may look for.
        near_distance_m: Largest gap in metres between two regions that `near` accepts.
    """

    max_steps: int = 10_000
    time_limit_s: float = 5.0
    max_concepts: int = 32
    near_distance_m: float = 30.0

    def validate_limits(self) -> None:
        require(self.max_steps >= 1, "max_steps", f"must be at least 1, got {self.max_steps}")
        require(self.time_limit_s > 0, "time_limit_s", f"must be positive, got {self.time_limit_s}")
        require(self.max_concepts >= 1, "max_concepts", f"must be at least 1, got {self.max_concepts}")
        require(self.near_distance_m >= 0, "near_distance_m", f"must be >= 0 metres, got {self.near_distance_m}")


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


_IMAGE_PART = re.compile(
    r"\s+(?:at|on|in) the (?P<part>top|bottom|left|right|upper|lower)(?: part| half| side)? of the "
    r"(?:image|picture|photo|scene|tile)$"
)
# ViperGPT crop(left, lower, right, upper) of each half of the image.
_HALVES = {
    "top": "image_patch.left, image_patch.vertical_center, image_patch.right, image_patch.upper",
    "upper": "image_patch.left, image_patch.vertical_center, image_patch.right, image_patch.upper",
    "bottom": "image_patch.left, image_patch.lower, image_patch.right, image_patch.vertical_center",
    "lower": "image_patch.left, image_patch.lower, image_patch.right, image_patch.vertical_center",
    "left": "image_patch.left, image_patch.lower, image_patch.horizontal_center, image_patch.upper",
    "right": "image_patch.horizontal_center, image_patch.lower, image_patch.right, image_patch.upper",
}
_RELATIONS = {
    "left_of": r"(?:on|at|to) the left of|left of|west of",
    "right_of": r"(?:on|at|to) the right of|right of|east of",
    "above": r"(?:on|at) the top of|above|north of",
    "below": r"(?:on|at) the bottom of|below|under|south of",
    "near": r"next to|near|close to|adjacent to|beside",
}
_RELATION = re.compile(
    r"^(?P<a>[a-z][a-z0-9 '\-]*?)(?:\s+(?:are|is)(?:\s+(?:there|located|situated))?)?\s+(?P<rel>"
    + "|".join(f"(?:{r})" for r in _RELATIONS.values())
    + r")\s+(?P<b>.+)$"
)


def _relation_method(phrase: str) -> str:
    return next(name for name, pattern in _RELATIONS.items() if re.fullmatch(pattern, phrase))


def _query_program(kind: str, phrase: str, part: str | None) -> Program:
    """The program of a presence/count/area question about `phrase` in the image (or one half of it)."""
    lines = [f"part = image_patch.crop({_HALVES[part]})"] if part else []
    patch = "part" if part else "image_patch"
    relation = _RELATION.match(phrase)
    if relation is None:
        return parse_program(viper_program(*lines, f'return {patch}.{kind}("{normalize_object(phrase)}")'))
    if kind == "area":
        raise CannotAnswerError("area questions about objects related to other objects are not supported")
    a, b = normalize_object(relation["a"]), normalize_object(relation["b"])
    method = _relation_method(relation["rel"])
    loop = [
        f'for region in {patch}.find("{a}"):',
        f'    for other in image_patch.find("{b}"):',
        f"        if region.{method}(other):",
    ]
    if kind == "exists":
        return parse_program(viper_program(*lines, *loop, "            return True", "return False"))
    counted = ["            count += 1", "            break"]
    return parse_program(viper_program(*lines, "count = 0", *loop, *counted, "return count"))


@dataclass
class RuleBasedPlanner:
    """Writes programs for presence, count, area and comparison questions with a fixed grammar; never guesses."""

    def plan(self, question: str) -> Program:
        """The program answering `question`.

        Raises:
            CannotAnswerError: The question is not one of the supported kinds; the message lists them.
        """
        if not isinstance(question, str) or not question.strip():
            raise CannotAnswerError("empty question")
        text = _clean_question(question)
        part_match = _IMAGE_PART.search(text)
        part = part_match["part"] if part_match else None
        if part_match:
            text = text[: part_match.start()]
        for pattern, kind in _QUESTION_PATTERNS:
            match = pattern.match(text)
            if match is None:
                continue
            groups = match.groupdict()
            if kind in ("exists", "count", "area"):
                return _query_program(kind, groups["x"], part)
            if part:
                raise CannotAnswerError("comparisons restricted to a part of the image are not supported")
            a, b = normalize_object(groups["a"]), normalize_object(groups["b"])
            function = "area" if kind == "area_cmp" else "count"
            if kind in ("count_eq", "count_ne"):
                op = "==" if kind == "count_eq" else "!="
            else:
                op = ">" if re.fullmatch(_MORE, groups["cmp"]) else "<"
            expression = f'image_patch.{function}("{a}") {op} image_patch.{function}("{b}")'
            return parse_program(viper_program(f"return {expression}"))
        raise CannotAnswerError(
            f"cannot answer {question!r}: supported questions ask whether an object is present ('Is there a road?'), "
            "how many there are ('How many buildings are there?'), the area they cover ('What is the area covered "
            "by water?') or compare two objects ('Are there more buildings than roads?'), optionally in part of the "
            "image ('... at the top of the image') or related to another object ('a building next to a road')"
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
class VQAAnswer:
    """An answer, or an explicit refusal.

    Attributes:
        question: The question asked.
        text: `"yes"`/`"no"`, a count, an area like `"1234 m2"`, a number or a text, or
            `"cannot answer: <reason>"`.
        value: The program's value (`bool`, `int`, `float` or `str`), or `None` when unanswerable.
        program: The program that was run (ViperGPT form), or `None`.
        answerable: Whether an answer was produced.
        reason: Why not, when unanswerable.
        detections: The detections the program looked at, by concept (for rendering evidence).
        stats: Steps, API calls and timings of the program's run, `None` when no program ran.
    """

    question: str
    text: str
    value: Answer | None = None
    program: str | None = None
    answerable: bool = True
    reason: str | None = None
    detections: dict[str, DetectionResult] = field(default_factory=dict, repr=False)
    stats: ProgramStats | None = field(default=None, repr=False)

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


def format_value(value: Answer) -> str:
    """RSVQA-style answer text: yes/no, a whole count, square metres for areas, else the number or text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Area):
        return f"{value:.0f} m2"
    if isinstance(value, float):
        return f"{value:.4g}"
    return value


class VisualQuestionAnswerer:
    """Answers questions about satellite images by planning a program and running it over GRAFT detections.

    Args:
        detector: A zero-shot :class:`ObjectDetector` (with a SAM refiner for `DetectionConfig(refine_with_sam=True)`).
        planner: Question -> program; defaults to :class:`RuleBasedPlanner`.
        config: Detection options used by `find`.
        vqa_config: Program limits and the spatial API's options.
    """

    def __init__(
        self,
        detector: ObjectDetector,
        planner: Planner | None = None,
        config: DetectionConfig | None = None,
        vqa_config: VQAConfig | None = None,
    ) -> None:
        self.detector = detector
        self.planner = planner or RuleBasedPlanner()
        self.config = config or DetectionConfig()
        self.vqa_config = vqa_config or VQAConfig()

    def plan(self, question: str, program: str | Program | None = None) -> Program:
        """The program for `question`: `program` checked when given, else the planner's.

        Raises:
            CannotAnswerError: No program (the planner's reason) or a refused one (the checker's reason).
        """
        try:
            if program is None:
                return self.planner.plan(question)
            return parse_program(program) if isinstance(program, str) else program
        except ProgramError as err:
            raise CannotAnswerError(f"the program was refused: {err}") from err

    def scene(
        self,
        image: ImageLike | PreparedImage,
        gsd: float | tuple[float, float] | None = None,
        original_size: tuple[int, int] | None = None,
    ) -> ImageScene:
        """The image read and encoded once, for any number of programs (detections are shared between them)."""
        return ImageScene(
            self.detector,
            self.detector.prepare(image),
            self.config,
            gsd,
            original_size,
            near_distance_m=self.vqa_config.near_distance_m,
            max_concepts=self.vqa_config.max_concepts,
        )

    def run(self, scene: ImageScene, question: str, program: Program) -> VQAAnswer:
        """Runs a checked program on a prepared scene; failures become unanswerable answers with the reason."""
        stats = ProgramStats()
        config = self.vqa_config
        try:
            value = run_program(program, scene, config.max_steps, config.time_limit_s, stats)
        except (CannotAnswerError, ProgramError) as err:
            logger.info("cannot answer %r: %s", question, err)
            text = f"cannot answer: {err}"
            return VQAAnswer(question, text, None, str(program), False, str(err), scene.requested_detections(), stats)
        logger.info("%r -> %r (%d steps, %d API calls)", question, value, stats.steps, stats.api_calls)
        detections = scene.requested_detections()
        return VQAAnswer(question, format_value(value), value, str(program), True, None, detections, stats)

    def answer(
        self,
        image: ImageLike | PreparedImage,
        question: str,
        gsd: float | tuple[float, float] | None = None,
        original_size: tuple[int, int] | None = None,
        program: str | Program | None = None,
    ) -> VQAAnswer:
        """Answers one question (or runs a given program) about one image.

        Args:
            image: A PIL image, an array, a GeoTIFF/image path, or a `PreparedImage`.
            question: The question.
            gsd: Metres per pixel of the image's raster (needed for areas and distances); `None` uses the model's.
            original_size: `(height, width)` of that raster when the image is a resized copy.
            program: Skip planning and run this program (ViperGPT-form text, or a checked `Program`).

        Returns:
            A :class:`VQAAnswer`; unanswerable questions and refused programs give `answerable=False` and the reason,
            never a guess.
        """
        try:
            parsed = self.plan(question, program)
        except CannotAnswerError as err:
            logger.info("cannot answer %r: %s", question, err)
            return VQAAnswer(question, f"cannot answer: {err}", answerable=False, reason=str(err))
        return self.run(self.scene(image, gsd, original_size), question, parsed)
