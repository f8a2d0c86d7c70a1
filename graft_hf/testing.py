"""Tiny random GRAFT and CLIP models for tests and examples (the way transformers tests its models).

No pretrained weights can be downloaded in offline environments; these build the same code paths as a real
ViT-B/16 checkpoint at a size that runs in milliseconds on a CPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizer,
    CLIPConfig,
    CLIPModel,
    CLIPSegConfig,
    CLIPSegForImageSegmentation,
)

from graft_hf.modeling import GraftConfig, GraftModel

TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
    "projection_dim": 16,
}
TINY_TEXT = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 49408,
    "max_position_embeddings": 77,
    "projection_dim": 16,
}


def tiny_graft_config(
    image_size: int = 32, patch_size: int = 8, projection_dim: int = 16, **kwargs: Any
) -> GraftConfig:
    """A tiny `GraftConfig` (2 layers, width 32) with the real CLIP vocabulary size."""
    vision = {**TINY_VISION, "image_size": image_size, "patch_size": patch_size, "projection_dim": projection_dim}
    text = {**TINY_TEXT, "projection_dim": projection_dim}
    return GraftConfig(vision_config=vision, text_config=text, projection_dim=projection_dim, **kwargs)


def tiny_graft_model(seed: int = 0, **config_kwargs: Any) -> GraftModel:
    """A tiny random `GraftModel` in eval mode, deterministic for `seed`."""
    torch.manual_seed(seed)
    return GraftModel(tiny_graft_config(**config_kwargs)).eval()


def tiny_clip_model(seed: int = 0, image_size: int = 32, patch_size: int = 8, projection_dim: int = 16) -> CLIPModel:
    """A tiny random transformers `CLIPModel` with the same shapes as `tiny_graft_config`."""
    torch.manual_seed(seed)
    config = CLIPConfig(
        vision_config={
            **TINY_VISION,
            "image_size": image_size,
            "patch_size": patch_size,
            "projection_dim": projection_dim,
        },
        text_config={**TINY_TEXT, "projection_dim": projection_dim},
        projection_dim=projection_dim,
    )
    return CLIPModel(config).eval()


def tiny_clipseg_model(seed: int = 0, image_size: int = 64, projection_dim: int = 16) -> CLIPSegForImageSegmentation:
    """A tiny random transformers `CLIPSegForImageSegmentation` (2 CLIP layers, both feeding the decoder)."""
    torch.manual_seed(seed)
    config = CLIPSegConfig(
        text_config={**TINY_TEXT, "projection_dim": projection_dim},
        vision_config={**TINY_VISION, "image_size": image_size, "projection_dim": projection_dim},
        projection_dim=projection_dim,
        extract_layers=[0, 1],
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    return CLIPSegForImageSegmentation(config).eval()


#: Word pieces of `tiny_sentence_encoder`'s tokenizer: BERT's special tokens and a few land-cover words.
TINY_VOCAB = (
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "of", "the", "photo", "satellite", "centered", "river", "lake",
    "forest", "field", "fields", "road", "highway", "houses", "crop", "land", "sea", "tractor", ".",
)  # fmt: skip


def tiny_sentence_encoder(
    folder: str | os.PathLike, seed: int = 0, hidden_size: int = 16, name: str = "tiny-sentence-encoder"
) -> Path:
    """Write a tiny random sentence encoder in sentence-transformers' folder layout (as all-MiniLM-L6-v2 ships):
    a BERT encoder with its WordPiece tokenizer, mean pooling and a Normalize module.

    Args:
        folder: Folder to create.
        seed: Seed of the random weights.
        hidden_size: Embedding size (the encoder's hidden size; no projection).
        name: Title of the folder's README.md (the name `graft_hf.text_towers` records).

    Returns:
        The folder.
    """
    folder = Path(folder)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=64,
    )
    BertModel(config).eval().save_pretrained(folder)
    BertTokenizer(vocab={token: i for i, token in enumerate(TINY_VOCAB)}).save_pretrained(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": hidden_size, "pooling_mode_mean_tokens": True}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32, "do_lower_case": False}))
    (folder / "README.md").write_text(f"---\nlibrary_name: sentence-transformers\n---\n\n# {name}\n")
    return folder


__all__ = [
    "TINY_TEXT",
    "TINY_VISION",
    "TINY_VOCAB",
    "tiny_clip_model",
    "tiny_clipseg_model",
    "tiny_graft_config",
    "tiny_graft_model",
    "tiny_sentence_encoder",
]
