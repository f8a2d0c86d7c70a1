"""Text queries for the pixel-level tasks: prompts in, L2-normalised query embeddings out.

Segmentation, detection, question answering and region maps all compare patch embeddings with the text embedding
of a class or object name. This module is the one place that turns names into those embeddings, with optional
prompt-template ensembling (CLIP's: average the L2-normalised embeddings of every template, then re-normalise).

Example:
    >>> from graft_hf.tokenizer import load_clip_tokenizer
    >>> tokenizer = load_clip_tokenizer()
    >>> queries = encode_queries(model, tokenizer, ["road", "building"], templates="satellite")  # (2, dim)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import torch
from transformers import PreTrainedTokenizerBase

from graft_hf.evaluation.templates import get_templates
from graft_hf.modeling.modeling_graft import ensemble_text_embeddings

logger = logging.getLogger(__name__)

__all__ = ["TextTower", "encode_queries", "make_text_encoder", "model_device"]


class TextTower(Protocol):
    """A model with a text tower in the joint space: a `GraftModel` (its `text_tower`, `GraftTextTower.encode`),
    or any model with `get_text_features(input_ids, attention_mask)`."""

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def get_text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor: ...


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a model without parameters)."""
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def make_text_encoder(model: TextTower, tokenizer: PreTrainedTokenizerBase) -> Callable[[list[str]], torch.Tensor]:
    """A function mapping prompts to text embeddings, as `graft_hf.evaluation.zeroshot` expects.

    Args:
        model: A `GraftModel` (or any model with `get_text_features(input_ids, attention_mask)`).
        tokenizer: The text tower's tokenizer (the one in the model's processor; for CLIP towers e.g.
            `graft_hf.tokenizer.load_clip_tokenizer()`).

    Returns:
        `encode(prompts) -> (len(prompts), dim)` float32 embeddings (normalised only by towers that normalise),
        computed without gradients on the model's device.
    """
    tower = getattr(model, "text_tower", None)
    if tower is not None:
        return lambda prompts: tower.encode(list(prompts), tokenizer).float()

    @torch.no_grad()
    def encode(prompts: list[str]) -> torch.Tensor:
        device = model_device(model)
        tokens = tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt")
        input_ids = tokens["input_ids"].to(device)
        attention_mask = tokens.get("attention_mask")
        if attention_mask is not None:
            attention_mask = attention_mask.to(device)
        return model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).float()

    return encode


@torch.no_grad()
def encode_queries(
    model: TextTower,
    tokenizer: PreTrainedTokenizerBase,
    queries: Sequence[str],
    templates: str | Sequence[str] | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Embeds text queries (class or object names), optionally ensembling prompt templates.

    Args:
        model: A `GraftModel` (or any model with `get_text_features(input_ids, attention_mask)`).
        tokenizer: The text tower's tokenizer (for CLIP towers e.g. `graft_hf.tokenizer.load_clip_tokenizer()`).
        queries: Names such as `["road", "building"]`.
        templates: `None` embeds each query as written; otherwise a template-set name from
            `graft_hf.evaluation.templates.TEMPLATE_SETS` (e.g. `"satellite"`) or templates with one `{}` each.
            The embeddings of one query's prompts are L2-normalised, averaged and re-normalised
            (`graft_hf.modeling.modeling_graft.ensemble_text_embeddings`).
        batch_size: Prompts per text-tower forward.

    Returns:
        float32 `(num_queries, dim)` with unit-norm rows, on the model's device.
    """
    queries = list(queries)
    if not queries:
        raise ValueError("queries is empty; pass at least one text query such as ['road']")
    bad = [q for q in queries if not isinstance(q, str) or not q.strip()]
    if bad:
        raise ValueError(f"every query must be a non-empty string, got {bad[:3]}")
    resolved = None if templates is None else get_templates(templates)
    embeds = ensemble_text_embeddings(make_text_encoder(model, tokenizer), queries, resolved, batch_size)
    logger.debug("encoded %d queries x %d templates", len(queries), len(resolved or ("{}",)))
    return embeds
