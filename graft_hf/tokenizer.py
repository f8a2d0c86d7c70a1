"""A real CLIP tokenizer that works offline.

The `open_clip_torch` wheel ships OpenAI's CLIP byte-pair-encoding vocabulary (`bpe_simple_vocab_16e6.txt.gz`).
Converted to a vocabulary and merge list in open_clip's order it gives a transformers `CLIPTokenizer` whose ids are
identical to open_clip's and to `openai/clip-vit-base-patch16`'s, with no download.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import logging
import os
from pathlib import Path

from transformers import AutoTokenizer, CLIPTokenizer, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

# open_clip keeps the first 49152 - 256 - 2 merges of the file (after its header line).
_NUM_MERGES = 49152 - 256 - 2
CONTEXT_LENGTH = 77


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode character table.

    Written out here rather than imported: transformers keeps its copy inside a model's tokenization module (not
    public API), and importing open_clip's costs seconds (it loads torch and timm).
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def bpe_vocabulary_path() -> Path:
    """Path of the BPE vocabulary file inside the installed open_clip_torch package."""
    # Locate the package without importing it: importing open_clip costs seconds (it loads torch and timm).
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise ImportError(
            "the offline CLIP tokenizer is built from open_clip_torch's vocabulary: pip install open_clip_torch"
        )
    path = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    if not path.exists():
        raise FileNotFoundError(f"open_clip_torch is installed but its BPE vocabulary is missing at {path}")
    return path


@functools.lru_cache(maxsize=1)
def _vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    lines = gzip.open(bpe_vocabulary_path()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1]]
    base = list(_bytes_to_unicode().values())
    tokens = base + [token + "</w>" for token in base] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, merges  # type: ignore[return-value]


def load_clip_tokenizer(name_or_path: str | os.PathLike | None = None) -> PreTrainedTokenizerBase:
    """A transformers CLIP tokenizer.

    Args:
        name_or_path: A saved tokenizer directory or Hub id; `None` builds OpenAI CLIP's tokenizer from the
            vocabulary inside open_clip_torch (offline, identical ids).

    Ids equal open_clip's for text that its `ftfy` clean-up leaves unchanged (it also straightens typographic
    quotes and repairs mojibake, which transformers' CLIP tokenizer does not).

    Returns:
        A `CLIPTokenizer` (pads with `<|endoftext|>` to 77 tokens when asked to pad to max length).
    """
    if name_or_path is not None:
        return AutoTokenizer.from_pretrained(name_or_path)
    vocab, merges = _vocab_and_merges()
    tokenizer = CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=CONTEXT_LENGTH)
    return tokenizer


__all__ = ["CONTEXT_LENGTH", "bpe_vocabulary_path", "load_clip_tokenizer"]
