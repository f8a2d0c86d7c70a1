"""The text tower of GRAFT models: any transformers text encoder, its pooling, an optional projection, optional L2.

A GRAFT model carries the text encoder its image tower was trained against, so that it answers text queries by
itself: CLIP's text transformer with its end-of-text pooling and text projection (the paper's image-target models,
`from_clip`), or a BERT-style sentence encoder such as all-MiniLM-L6-v2 with attention-masked mean pooling and L2
normalisation (the alt-text models of graft-hf's EuroSAT benchmarks). [`GraftTextTower`] is the one implementation
of "texts -> embeddings" for both: `GraftModel.get_text_features` runs it, and graft-hf's alt-text teacher (the
`sentence` teacher of `graft pairs embed --text`) is a `GraftTextTower` too, so the targets a student learnt and
the text embeddings its saved model produces come from the same code.

[`ensemble_text_embeddings`] (CLIP's prompt ensembling) lives here as well. This file is uploaded to the Hub as
remote code: it imports torch and transformers only.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput

#: How a text tower turns token states into one vector per text: the encoder's own `pooler_output` (CLIP's
#: end-of-text token after the final LayerNorm), the attention-masked mean of the last hidden states
#: (sentence-transformers' mean pooling), or the first token's last hidden state.
TEXT_POOLINGS = ("pooler", "mean", "cls")
# A tokenizer without a length limit reports a huge model_max_length (transformers' VERY_LARGE_INTEGER).
_NO_LIMIT = 10**9


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    return x / x.norm(p=2, dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def ensemble_text_embeddings(
    encode_text: Callable[[list[str]], torch.Tensor],
    queries: Sequence[str],
    templates: Sequence[str] | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """CLIP's prompt ensembling: one unit-norm embedding per query, averaged over prompt templates.

    Each query `q` is embedded as every `t.replace("{}", q)`; the L2-normalised embeddings of one query's prompts
    are averaged and the mean is re-normalised (Radford et al. 2021, sec. 3.1.4: averaging in embedding space).
    This is the one implementation behind `GraftModel.encode_text_queries` and graft-hf's zero-shot classifiers
    and pixel-level task queries; it lives here so that the model works as Hub remote code on its own.

    Args:
        encode_text: Maps a list of `b` prompts to `(b, dim)` text embeddings (need not be normalised).
        queries: Texts to embed, e.g. class names.
        templates: Templates with exactly one `{}` each; `None` embeds the queries as written.
        batch_size: Prompts per `encode_text` call.

    Returns:
        float32 `(num_queries, dim)` with unit-norm rows, on the device `encode_text` returned.

    Raises:
        ValueError: No query, a template without exactly one `{}`, a non-positive `batch_size`, or `encode_text`
            returning the wrong shape or non-finite values.
    """
    queries = list(queries)
    if not queries:
        raise ValueError("no text queries given; pass at least one")
    prompt_templates = list(templates) if templates else ["{}"]
    for template in prompt_templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(f"each template must contain exactly one '{{}}' placeholder, got {template!r}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    prompts = [t.replace("{}", q) for q in queries for t in prompt_templates]  # query-major
    chunks = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        embeds = torch.as_tensor(encode_text(batch))
        if embeds.ndim != 2 or embeds.shape[0] != len(batch):
            raise ValueError(
                f"encode_text must return (num_prompts, dim) = ({len(batch)}, dim), got {tuple(embeds.shape)}"
            )
        if not torch.isfinite(embeds).all():
            raise ValueError(f"encode_text returned non-finite embeddings for prompts {batch[:3]}...")
        chunks.append(l2_normalize(embeds.float()))
    embeds = torch.cat(chunks).reshape(len(queries), len(prompt_templates), -1)  # (num_queries, templates, dim)
    return l2_normalize(embeds.mean(dim=1))


@dataclass
class GraftTextOutput(ModelOutput):
    """Output of [`GraftTextTower.forward`].

    Args:
        text_embeds: `(batch, output_dim)` text embeddings: pooled, projected when the tower has a projection, and
            unit-norm when it normalises.
        text_model_output: Output of the text encoder (`last_hidden_state`, `pooler_output`, ...).
    """

    text_embeds: torch.Tensor | None = None
    text_model_output: BaseModelOutputWithPooling | None = None


def pool_text(outputs: Any, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """One vector per text from a text encoder's output.

    Args:
        outputs: The encoder's output, with `last_hidden_state` `(batch, seq_len, hidden)` and, for `"pooler"`,
            `pooler_output` `(batch, hidden)`.
        attention_mask: `(batch, seq_len)`, 1 on real tokens; `None` treats every token as real.
        pooling: One of `TEXT_POOLINGS`.

    Returns:
        `(batch, hidden)` pooled states.
    """
    if pooling == "pooler":
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            raise ValueError(
                "the text encoder returns no pooler_output; use text_pooling='mean' or 'cls' for this encoder"
            )
        return pooled
    hidden = outputs.last_hidden_state  # (batch, seq_len, hidden)
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ValueError(f"unknown text pooling {pooling!r}; use one of {TEXT_POOLINGS}")
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
    # sentence-transformers' mean pooling, operation for operation (its embeddings are reproduced bit for bit).
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (batch, seq_len, 1)
    accumulate = torch.float32 if hidden.dtype in (torch.float16, torch.bfloat16) else hidden.dtype
    summed = (hidden * mask).sum(dim=1, dtype=accumulate)  # (batch, hidden)
    counts = torch.clamp(mask.sum(dim=1, dtype=accumulate), min=1e-9)  # (batch, 1)
    return (summed / counts).to(hidden.dtype)


class GraftTextTower(nn.Module):
    """A text encoder, its pooling, an optional linear projection and optional L2 normalisation.

    `GraftModel.text_tower` is a `GraftTextTower` over the model's own `text_model` and `text_projection`
    (the parameters are shared, the checkpoint keys stay `text_model.*` and `text_projection.*`); a standalone
    tower (e.g. all-MiniLM-L6-v2 read by `graft_hf.text_towers.load_text_tower`) is put into a model with
    `GraftModel.set_text_tower`.

    Args:
        text_model: A transformers text encoder returning `last_hidden_state` (and `pooler_output` for
            `pooling="pooler"`): a `CLIPTextModel`, a `BertModel`, ...
        text_projection: Bias-free linear map into the joint space, or `None` (the pooled state is the embedding).
        pooling: One of `TEXT_POOLINGS`.
        normalize: L2-normalise the embeddings (sentence encoders such as all-MiniLM-L6-v2 do).
    """

    def __init__(
        self,
        text_model: nn.Module,
        text_projection: nn.Linear | None = None,
        pooling: str = "pooler",
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in TEXT_POOLINGS:
            raise ValueError(f"unknown text pooling {pooling!r}; use one of {TEXT_POOLINGS}")
        self.text_model = text_model
        self.text_projection = text_projection
        self.pooling = pooling
        self.normalize = bool(normalize)
        self._takes_token_types = "token_type_ids" in inspect.signature(text_model.forward).parameters

    @property
    def output_dim(self) -> int:
        """Size of the text embeddings."""
        if self.text_projection is not None:
            return int(self.text_projection.out_features)
        return int(self.text_model.config.hidden_size)

    @property
    def max_length(self) -> int | None:
        """Most tokens the encoder takes (its position embeddings), or `None` when unbounded."""
        return getattr(self.text_model.config, "max_position_embeddings", None)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> GraftTextOutput:
        """Embed tokenised texts.

        Args:
            input_ids: `(batch, seq_len)` token ids of the tower's tokenizer.
            attention_mask: `(batch, seq_len)` padding mask.
            token_type_ids: `(batch, seq_len)` segment ids (BERT-style encoders; ignored by encoders without them).
            position_ids: Optional `(batch, seq_len)` positions.

        Returns:
            [`GraftTextOutput`] with `text_embeds` `(batch, output_dim)`.
        """
        if input_ids.ndim != 2 or input_ids.shape[0] == 0:
            raise ValueError(
                f"input_ids must be a non-empty (batch, sequence_length) tensor, got {tuple(input_ids.shape)}"
            )
        inputs: dict[str, torch.Tensor] = {"input_ids": input_ids}
        if attention_mask is not None:
            inputs["attention_mask"] = attention_mask
        if position_ids is not None:
            inputs["position_ids"] = position_ids
        if token_type_ids is not None and self._takes_token_types:
            inputs["token_type_ids"] = token_type_ids
        outputs = self.text_model(**inputs, return_dict=True)
        embeds = pool_text(outputs, attention_mask, self.pooling)  # (batch, hidden)
        if self.text_projection is not None:
            embeds = self.text_projection(embeds)  # (batch, projection_dim)
        if self.normalize:
            embeds = F.normalize(embeds, p=2, dim=-1)  # as sentence-transformers' Normalize module
        return GraftTextOutput(text_embeds=embeds, text_model_output=outputs)

    def token_limit(self, tokenizer: Any) -> int | None:
        """Tokens kept per text: the tokenizer's `model_max_length`, capped by the encoder's positions."""
        limits = [n for n in (getattr(tokenizer, "model_max_length", None), self.max_length) if n and n < _NO_LIMIT]
        return min(limits) if limits else None

    @torch.no_grad()
    def encode(self, texts: Sequence[str], tokenizer: Any) -> torch.Tensor:
        """Tokenise `texts` (padded to the longest, truncated at `token_limit`) and embed them.

        Args:
            texts: The texts.
            tokenizer: The tower's tokenizer (or a processor with a `tokenizer`).

        Returns:
            `(len(texts), output_dim)` embeddings on the tower's device.
        """
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
        tokens = tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.token_limit(tokenizer), return_tensors="pt"
        )
        device = next(self.parameters()).device
        names = ("input_ids", "attention_mask", "token_type_ids")
        return self(**{name: tokens[name].to(device) for name in names if name in tokens}).text_embeds


__all__ = [
    "TEXT_POOLINGS",
    "GraftTextOutput",
    "GraftTextTower",
    "ensemble_text_embeddings",
    "l2_normalize",
    "pool_text",
]
