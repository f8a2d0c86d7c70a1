"""Resumable writing of simulated pair shards, shared by the EuroSAT tile and mosaic benchmarks.

Shards are written atomically (:func:`graft_hf.io.atomic_path`) and recorded in a manifest beside them together with
a fingerprint of everything that decides their content: a rerun with the same inputs keeps the finished shards and
writes the missing ones, while a rerun with other inputs in the same folder is refused instead of mixing the two.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from graft_hf.io import atomic_path, write_json
from graft_hf.pairs.card import render_summary_card
from graft_hf.pairs.schema import pairs_arrow_schema
from graft_hf.quickstart.observations import ObservationSampler

__all__ = ["MANIFEST", "inputs_fingerprint", "simulated_pairs_card", "simulated_photo", "write_resumable_shards"]

MANIFEST = "quickstart_pairs.json"


def inputs_fingerprint(sampler: ObservationSampler, *parts: list) -> str:
    """SHA-256 of everything that decides the shards' content: the sampler's settings, then each JSON part."""
    digest = hashlib.sha256()
    digest.update(json.dumps(dataclasses.asdict(sampler), sort_keys=True).encode())
    for part in parts:
        digest.update(json.dumps(part).encode())
    return digest.hexdigest()


def write_resumable_shards(
    output_dir: Path,
    parts: Sequence[np.ndarray],
    make_rows: Callable[[np.ndarray], Iterable[dict]],
    fingerprint: str,
    *,
    what: str,
    row_group_size: int = 256,
    unit: str = "tile",
    progress: bool = True,
    manifest: str = MANIFEST,
) -> None:
    """Write shard ``k`` from the rows of ``parts[k]`` into ``output_dir/data``, skipping shards already written.

    Args:
        output_dir: The pairs folder.
        parts: Item indices of each shard.
        make_rows: Rows (pair-schema dicts) of the items of one part.
        fingerprint: Digest of the inputs; a folder written with another one is refused.
        what: What the shards hold, for the refusal message (e.g. ``"EuroSAT pairs"``).
        row_group_size: Parquet row group size.
        unit: Progress bar unit.
        progress: Show a progress bar.
        manifest: File name of the manifest in ``output_dir``.

    Raises:
        ValueError: The folder holds shards written from other inputs.
    """
    manifest_path = output_dir / manifest
    record = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    if record and record.get("fingerprint") != fingerprint:
        raise ValueError(
            f"{output_dir} already holds {what} written with other inputs (data subset, sizes, observation sampler, "
            "seed or shard count); use another output folder or delete it"
        )
    (output_dir / "data").mkdir(parents=True, exist_ok=True)
    done = set(record.get("shards_done", []))
    total = sum(len(part) for part in parts)
    with tqdm(total=total, unit=unit, desc=f"write {what}", disable=not progress or None) as bar:
        for k, part in enumerate(parts):
            shard = output_dir / "data" / f"train-{k:05d}-of-{len(parts):05d}.parquet"
            if shard.name not in done or not shard.is_file():
                table = pa.Table.from_pylist(list(make_rows(part)), schema=pairs_arrow_schema())
                with atomic_path(shard) as tmp:
                    pq.write_table(table, tmp, row_group_size=row_group_size, compression="zstd")
                done.add(shard.name)
                write_json(manifest_path, {"fingerprint": fingerprint, "shards_done": sorted(done)})
            bar.update(len(part))


def simulated_photo(photo_id: str, row: float, col: float, text: str) -> dict:
    """One ``photos`` entry of the pair schema for a simulated observation: text at a pixel, nothing else known."""
    return {
        "photo_id": photo_id,
        "lat": None,
        "lon": None,
        "row": float(row),
        "col": float(col),
        "time": None,
        "license": "simulated",
        "owner": None,
        "text": text,
        "image": None,
        "url": None,
        "embedding": None,
        "text_embedding": None,
    }


def simulated_pairs_card(title: str, description: str, summary: dict) -> str:
    """A pairs dataset card (``README.md``) whose ``configs:`` block lets ``load_dataset`` read the shards."""

    return render_summary_card(title, description, summary, tags=("remote-sensing", "graft", "simulated"))
