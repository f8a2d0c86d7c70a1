"""Pairs dataset cards: every card is a huggingface_hub DatasetCard whose `configs:` block `load_dataset` reads."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard
from PIL import Image

from graft_hf.pairs.card import PAIRS_CONFIGS
from graft_hf.pairs.schema import pairs_arrow_schema
from graft_hf.quickstart.shards import simulated_pairs_card, simulated_photo


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (30, 90, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def _row(tile: int) -> dict:
    return {
        "tile_id": f"sim-{tile}",
        "image": {"bytes": _png(), "path": None},
        "bands": None,
        "band_names": ["red", "green", "blue"],
        "crs": "EPSG:32633",
        "transform": [10.0, 0.0, 0.0, 0.0, -10.0, 0.0],
        "gsd": 10.0,
        "sensor": "sentinel2",
        "acquisition_date": "2017-06-13",
        "center_lat": 48.0,
        "center_lon": 12.0,
        "raster": "eurosat",
        "photos": [simulated_photo(f"sim-{tile}-0", 3.5, 4.5, "a river")],
    }


def test_simulated_pairs_card_loads_with_datasets(tmp_path: Path) -> None:
    from datasets import load_dataset

    summary = {"tiles": 2, "observations": 2, "sampler": {"seed": 0}}
    text = simulated_pairs_card("Simulated pairs", "Two tiles with one observation each.", summary)
    card = DatasetCard(text)
    assert card.data.configs == PAIRS_CONFIGS and card.data.tags == ["remote-sensing", "graft", "simulated"]
    assert text.startswith("---\n") and text.endswith("```\n")
    assert "# Simulated pairs\n\nTwo tiles with one observation each." in text and '"observations": 2' in text

    (tmp_path / "README.md").write_text(text)
    (tmp_path / "data").mkdir()
    table = pa.Table.from_pylist([_row(0), _row(1)], schema=pairs_arrow_schema())
    pq.write_table(table, tmp_path / "data" / "train-00000-of-00001.parquet")
    rows = list(load_dataset(str(tmp_path), split="train", streaming=True))
    assert [r["tile_id"] for r in rows] == ["sim-0", "sim-1"] and rows[1]["photos"][0]["text"] == "a river"
    assert rows[0]["image"].size == (8, 8), "the shards' features metadata decodes the image column"
