"""Seeded tiny pair shards, a tiny teacher CLIP and the overrides that train on them fast (the training tests).

Each tile is a flat colour crop with a few photos of a similar colour. Photos carry their PNG bytes and their
teacher embedding, computed with the training task's own on-the-fly teacher path (float32 teacher, rounded to
float16 like stored embeddings), so precomputed and on-the-fly targets are identical. Text embeddings are random (alt-text tests).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

CROP = 448
README = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
  - split: validation
    path: data/validation-*.parquet
---
# tiny training pairs
"""


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def write_teacher(root: Path) -> Path:
    """Save a tiny random CLIP (224 px, patch 32, 16-d) as the teacher checkpoint."""
    from graft_hf.testing import tiny_clip_model

    path = root / "teacher"
    tiny_clip_model(seed=0, image_size=224, patch_size=32).save_pretrained(path)
    return path


def write_pairs(
    root: Path, teacher_dir: Path, num_shards: int = 2, tiles_per_shard: int = 16, val_tiles: int = 6, seed: int = 0
) -> Path:
    """Write train/validation parquet shards with photos, photo bytes and precomputed teacher embeddings."""
    from graft_hf.pairs.schema import pairs_table
    from graft_hf.training.task import ClipPhotoPreprocess, GraftTrainingTask, load_teacher_clip

    teacher = load_teacher_clip(teacher_dir)
    preprocess = ClipPhotoPreprocess(teacher.config.vision_config.image_size)
    # The training task's own teacher path (it is a module method; the student is irrelevant here).
    task = GraftTrainingTask(torch.nn.Identity(), teacher=teacher, task="image", teacher_dtype="float32")
    rng = np.random.default_rng(seed)
    data = root / "pairs"
    (data / "data").mkdir(parents=True)
    (data / "README.md").write_text(README)
    shards = [("train", s, num_shards, tiles_per_shard) for s in range(num_shards)] + [("validation", 0, 1, val_tiles)]
    for split, shard, total, tiles in shards:
        rows = []
        for t in range(tiles):
            colour = rng.integers(0, 256, size=3)
            crop = np.empty((CROP, CROP, 3), dtype=np.uint8)
            crop[...] = colour.astype(np.uint8)
            crop[::16] = (colour // 2).astype(np.uint8)  # stripes: some texture, still cheap to encode
            photos, pixels = [], []
            for k in range(int(rng.integers(1, 4))):
                photo = np.clip(colour + rng.normal(0, 30, size=(24, 32, 3)), 0, 255).astype(np.uint8)
                data_bytes = _png(photo)
                pixels.append(preprocess(Image.open(io.BytesIO(data_bytes))))
                photos.append(
                    {
                        "photo_id": f"{split}-{shard}-{t}-{k}",
                        "lat": 47.0,
                        "lon": -99.0,
                        "row": float(rng.uniform(120, CROP - 120)),
                        "col": float(rng.uniform(120, CROP - 120)),
                        "time": None,
                        "license": "cc0",
                        "owner": None,
                        "text": f"a photo of colour {colour.tolist()}",
                        "image": data_bytes,
                        "url": None,
                        "embedding": None,
                        "text_embedding": rng.normal(size=16).astype(np.float16).tolist(),
                    }
                )
            mask = torch.ones(1, len(pixels), dtype=torch.bool)
            embeds = task.teacher_embeds(torch.stack(pixels)[None], mask)[0]  # (num_photos, 16), fp16-rounded
            for photo, embed in zip(photos, embeds, strict=True):
                photo["embedding"] = embed.to(torch.float16).tolist()
            rows.append(
                {
                    "tile_id": f"{split}-{shard}-{t}",
                    "image": {"bytes": _png(crop), "path": None},
                    "bands": None,
                    "band_names": [],
                    "crs": "EPSG:26914",
                    "transform": [1.0, 0.0, 0.0, 0.0, -1.0, 0.0],
                    "gsd": 1.0,
                    "sensor": "naip",
                    "acquisition_date": "2020-08-31",
                    "center_lat": 47.0,
                    "center_lon": -99.0,
                    "raster": "synthetic.tif",
                    "photos": photos,
                }
            )
        table = pairs_table(rows)
        pq.write_table(table, data / "data" / f"{split}-{shard:05d}-of-{total:05d}.parquet")
    return data


def tiny_overrides(data: Path, teacher: Path, output: Path, **extra: object) -> list[str]:
    """Overrides that turn any config into a fast CPU run on the tiny pairs."""
    values: dict[str, object] = {
        "data.path": str(data),
        "data.num_workers": 0,
        "data.shuffle_buffer": 8,
        "data.interleave_shards": 1,
        "teacher.name_or_path": str(teacher),
        "teacher.dtype": "float32",
        "output_dir": str(output),
        "train.batch_size": 4,
        "train.max_steps": 6,
        "train.log_every": 1,
        "train.save_every": 0,
        "train.eval_every": 0,
        "train.tracker": "none",
        "train.progress_bar": False,
        "train.mixed_precision": "no",
        "train.cpu": True,
        "optim.lr": 1e-3,
        # Full LR from the first step. (transformers' warm-up starts at LR 0: warmup_steps=1 would waste the
        # first of these few steps; the hand-written schedule it replaced gave full LR at warmup_steps=1.)
        "optim.warmup_steps": 0,
        **extra,
    }
    return [f"{k}={v}" for k, v in values.items()]
