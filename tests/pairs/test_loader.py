"""Streaming pairs loader: load_dataset round trip, node and worker splits, augmentation, collate, determinism."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

import graft_hf.pairs.loader as loader_module
from graft_hf.pairs.loader import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    LoaderConfig,
    PairsIterableDataset,
    build_pairs_dataloader,
    collate_pairs,
    open_pairs_stream,
)
from graft_hf.pairs.schema import pairs_arrow_schema, pairs_table

CROP = 448
DIM = 8
README = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
---
# tiny pairs
"""


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _photo(rng: np.random.Generator, index: int, row: float, col: float, embed: bool) -> dict:
    return {
        "photo_id": f"p{index}",
        "lat": 47.0,
        "lon": -99.0,
        "row": row,
        "col": col,
        "time": None,
        "license": "cc-by",
        "owner": None,
        "text": f"photo {index}",
        "image": _png(rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8)),
        "url": None,
        "embedding": rng.normal(size=DIM).astype(np.float16).tolist() if embed else None,
        "text_embedding": None,
    }


def write_tiny_pairs(root: Path, num_shards: int = 4, tiles_per_shard: int = 5, seed: int = 0) -> dict[str, dict]:
    """Write parquet shards with a README configs block; every tile's photos sit on unique colour marks.

    Returns:
        tile_id -> {"photos": [...], "colours": (n, 3) uint8} for tiles that have at least one embedding.
    """
    rng = np.random.default_rng(seed)
    (root / "data").mkdir(parents=True)
    (root / "README.md").write_text(README)
    expected: dict[str, dict] = {}
    counter = 0
    for shard in range(num_shards):
        rows = []
        for t in range(tiles_per_shard):
            tile_id = f"naip-{shard}-{t}"
            crop = np.full((CROP, CROP, 3), 128, dtype=np.uint8)
            num_photos = int(rng.integers(1, 6))
            # The last tile of shard 0 has no embedded photo at all: it must be skipped and counted.
            no_target = shard == 0 and t == tiles_per_shard - 1
            photos, colours = [], []
            for k in range(num_photos):
                row, col = 40.0 + 80 * k + rng.uniform(0, 40), float(rng.uniform(40, CROP - 40))
                colour = np.array([20 + 40 * k, 255 - 40 * k, int(rng.integers(30, 255))], dtype=np.uint8)
                crop[int(row) - 4 : int(row) + 5, int(col) - 4 : int(col) + 5] = colour
                photos.append(_photo(rng, counter, row, col, embed=not no_target and k != 1))
                colours.append(colour)
                counter += 1
            rows.append(
                {
                    "tile_id": tile_id,
                    "image": {"bytes": _png(crop), "path": None},
                    "bands": None,
                    "band_names": [],
                    "crs": "EPSG:26914",
                    "transform": [5.0, 0.0, 0.0, 0.0, -5.0, 0.0],
                    "gsd": 5.0,
                    "sensor": "naip",
                    "acquisition_date": "2020-08-31",
                    "center_lat": 47.0,
                    "center_lon": -99.0,
                    "raster": "x.tif",
                    "photos": photos,
                }
            )
            if not no_target:
                keep = [i for i, p in enumerate(photos) if p["embedding"] is not None]
                expected[tile_id] = {
                    "photos": [photos[i] for i in keep],
                    "colours": np.stack([colours[i] for i in keep]),
                }
        table = pairs_table(rows)
        pq.write_table(table, root / "data" / f"train-{shard:05d}-of-{num_shards:05d}.parquet")
    return expected


@pytest.fixture(scope="module")
def tiny_pairs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    root = tmp_path_factory.mktemp("pairs")
    return root, write_tiny_pairs(root)


def _config(root: Path, **kwargs) -> LoaderConfig:
    defaults = {"data": str(root), "batch_size": 3, "num_workers": 0, "shuffle_buffer": 8, "seed": 0}
    # The per-sample path is the reference these tests check; the batched path is checked equal to it below.
    defaults["geometry"] = "per_sample"
    # One input shard at a time: datasets sleeps 5 s after each pass that interleaves shards.
    defaults["interleave_shards"] = 1
    return LoaderConfig(**{**defaults, **kwargs})


def _tile_ids(loader) -> list[str]:
    return [tile for batch in loader for tile in batch["tile_id"]]


def test_streaming_round_trip_eval_mode(tiny_pairs) -> None:
    root, expected = tiny_pairs
    loader = build_pairs_dataloader(_config(root, train=False, target="auto"))
    assert loader.dataset.config.target == "embedding"
    seen = {}
    for batch in loader:
        for i, tile in enumerate(batch["tile_id"]):
            seen[tile] = {key: value[i] for key, value in batch.items() if key != "tile_id"}
    assert set(seen) == set(expected)
    assert loader.dataset.stats["tiles_skipped_no_target"] == 1
    assert loader.dataset.stats["photos_without_embedding"] > 0
    for tile, info in expected.items():
        got = seen[tile]
        n = len(info["photos"])
        assert got["ground_mask"].sum() == n
        want = torch.tensor([p["embedding"] for p in info["photos"]], dtype=torch.float32)
        torch.testing.assert_close(got["ground_embeds"][:n], want)
        # Evaluation: centre view, coordinates shifted by (112, 112), no rotation.
        want_coords = torch.tensor([[p["row"] - 112, p["col"] - 112] for p in info["photos"]], dtype=torch.float32)
        torch.testing.assert_close(got["ground_pixel_coords"][:n], want_coords)
        inside = ((want_coords >= 0) & (want_coords < 224)).all(dim=1)
        assert torch.equal(got["ground_in_view"][:n], inside)


def test_train_views_keep_photos_on_their_marks(tiny_pairs) -> None:
    root, expected = tiny_pairs
    loader = build_pairs_dataloader(_config(root, target="embedding"))
    mean = torch.tensor(OPENAI_CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD).view(3, 1, 1)
    checked = 0
    for batch in loader:
        pixels = batch["pixel_values"] * std + mean  # back to [0, 1]
        assert pixels.shape[1:] == (3, 224, 224)
        # Every crop value is >= 20/255: zero padding from outside the crop would show up below that.
        assert pixels.min() > 19 / 255, "a view sampled outside its crop (zero padding)"
        for i, tile in enumerate(batch["tile_id"]):
            info = expected[tile]
            assert int(batch["ground_mask"][i].sum()) == len(info["photos"])
            for k in range(len(info["photos"])):
                # Photos keep shard order (fewer than max_photos here); marks are 80 px apart, so never overlap.
                want = torch.tensor(info["photos"][k]["embedding"], dtype=torch.float32)
                torch.testing.assert_close(batch["ground_embeds"][i, k], want)
                if not batch["ground_in_view"][i, k]:
                    continue
                row, col = batch["ground_pixel_coords"][i, k].tolist()
                r, c = int(row), int(col)
                colour = torch.tensor(info["colours"][k], dtype=torch.float32) / 255
                torch.testing.assert_close(pixels[i, :, r, c], colour, atol=2e-3, rtol=0)
                checked += 1
    assert checked >= 5


def test_two_nodes_see_disjoint_tiles_covering_all(tiny_pairs) -> None:
    root, expected = tiny_pairs
    ranks = [set(_tile_ids(build_pairs_dataloader(_config(root, rank=r, world_size=2)))) for r in (0, 1)]
    assert ranks[0] and ranks[1]
    assert ranks[0].isdisjoint(ranks[1])
    assert ranks[0] | ranks[1] == set(expected)


def test_uneven_shards_warn_and_explain(tiny_pairs, caplog: pytest.LogCaptureFixture) -> None:
    root, _ = tiny_pairs
    with caplog.at_level(logging.WARNING, logger="graft_hf.pairs.loader"):
        open_pairs_stream(_config(root, rank=0, world_size=3))
    assert "do not divide among 3 nodes" in caplog.text and "multiple of" in caplog.text


def test_two_workers_yield_each_tile_once_per_epoch(tiny_pairs) -> None:
    root, expected = tiny_pairs
    loader = build_pairs_dataloader(_config(root, num_workers=2))
    for epoch in (0, 1):
        loader.dataset.set_epoch(epoch)
        tiles = _tile_ids(loader)
        assert sorted(tiles) == sorted(expected), f"epoch {epoch}: duplicates or missing tiles"


def test_deterministic_for_a_seed_and_epoch_aware(tiny_pairs) -> None:
    root, _ = tiny_pairs

    def run(epoch: int, seed: int = 0) -> list[dict]:
        loader = build_pairs_dataloader(_config(root, seed=seed))
        loader.dataset.set_epoch(epoch)
        return list(loader)

    first, again, next_epoch = run(0), run(0), run(1)
    assert [b["tile_id"] for b in first] == [b["tile_id"] for b in again]
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a["pixel_values"], b["pixel_values"])
        torch.testing.assert_close(a["ground_pixel_coords"], b["ground_pixel_coords"])
    order = lambda batches: [t for b in batches for t in b["tile_id"]]  # noqa: E731
    assert order(first) != order(next_epoch)
    # A tile's view changes with the epoch.
    coords = lambda batches: {t: b["ground_pixel_coords"][i] for b in batches for i, t in enumerate(b["tile_id"])}  # noqa: E731
    c0, c1 = coords(first), coords(next_epoch)
    assert any(not torch.equal(c0[t], c1[t]) for t in c0)


def test_collate_packs_ragged_photo_counts() -> None:
    samples = []
    for n, tile in ((1, "a"), (4, "b"), (2, "c")):
        samples.append(
            {
                "tile_id": tile,
                "pixel_values": torch.randn(3, 224, 224),
                "ground_embeds": torch.randn(n, DIM),
                "ground_pixel_coords": torch.rand(n, 2) * 224,
                "ground_in_view": torch.tensor([True, False, True, True][:n]),
            }
        )
    batch = collate_pairs(samples)
    assert batch["pixel_values"].shape == (3, 3, 224, 224)
    assert batch["ground_embeds"].shape == (3, 4, DIM) and batch["ground_embeds"].dtype == torch.float32
    assert batch["ground_pixel_coords"].shape == (3, 4, 2)
    assert batch["ground_mask"].tolist() == [[True, False, False, False], [True] * 4, [True, True, False, False]]
    assert batch["ground_in_view"].tolist() == [
        [True, False, False, False],
        [True, False, True, True],
        [True, False, False, False],
    ]
    assert batch["tile_id"] == ["a", "b", "c"]
    torch.testing.assert_close(batch["ground_embeds"][1], samples[1]["ground_embeds"])
    assert torch.count_nonzero(batch["ground_embeds"][0, 1:]) == 0
    with pytest.raises(ValueError, match="mix teachers"):
        samples[2]["ground_embeds"] = torch.randn(2, DIM + 1)
        collate_pairs(samples)


def test_on_the_fly_pixels_target_and_bad_photo_bytes(tiny_pairs) -> None:
    root, _ = tiny_pairs

    def preprocess(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1) / 255

    config = _config(root, target="pixels", train=False)
    stream = open_pairs_stream(config)
    dataset = PairsIterableDataset(stream, config, preprocess)
    row = next(iter(stream))
    row["photos"][0]["image"] = b"not an image"
    sample = dataset.prepare(row)
    assert dataset.stats["photos_undecodable"] == 1
    assert sample["ground_pixel_values"].shape == (len(row["photos"]) - 1, 3, 8, 8)
    batch = collate_pairs([sample, sample])
    assert batch["ground_pixel_values"].shape == (2, len(row["photos"]) - 1, 3, 8, 8)
    assert "ground_embeds" not in batch
    with pytest.raises(ValueError, match="teacher preprocess"):
        PairsIterableDataset(stream, config, None)


def test_photo_images_typed_or_untyped_give_the_same_pixel_targets(tmp_path: Path) -> None:
    """Image-typed photo bytes (new shards) and plain binary ones (older shards) both feed on-the-fly targets."""
    from tests.helpers.pairs_shards import write_shard

    def preprocess(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1) / 255

    samples = {}
    for legacy in (False, True):
        root = tmp_path / f"legacy{legacy}"
        write_shard(root / "data" / "train-00000-of-00001.parquet", 1, legacy=legacy)
        (root / "README.md").write_text(README)
        config = _config(root, target="auto", train=False, batch_size=1, view_size=16)
        loader = build_pairs_dataloader(config, preprocess)
        samples[legacy] = [batch["ground_pixel_values"] for batch in loader]
        assert loader.dataset.config.target == "pixels" and len(samples[legacy]) == 2
    for typed, untyped in zip(samples[False], samples[True], strict=True):
        torch.testing.assert_close(typed, untyped, rtol=0, atol=0)


def test_auto_target_without_embeddings_names_the_fix(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    write_tiny_pairs(root, num_shards=1, tiles_per_shard=1)  # its only tile has no embedding
    with pytest.raises(ValueError, match="graft pairs embed"):
        build_pairs_dataloader(_config(root))
    with pytest.raises(FileNotFoundError, match="graft pairs build"):
        build_pairs_dataloader(_config(tmp_path / "missing"))


def test_text_embedding_targets_and_max_photos(tiny_pairs) -> None:
    root, _ = tiny_pairs
    config = _config(root, target="text_embedding", train=True, max_photos=3)
    stream = open_pairs_stream(_config(root, train=False))
    row = next(iter(stream))
    base = row["photos"][0]
    row["photos"] = [
        {**base, "photo_id": f"q{k}", "row": 100.0 + k, "text_embedding": None if k == 2 else [float(k)] * DIM}
        for k in range(6)
    ]
    dataset = PairsIterableDataset(stream, config)
    sample = dataset.prepare(row)
    assert dataset.stats["photos_without_text_embedding"] == 1
    assert dataset.stats["photos_over_max"] == 2  # 5 photos with a text embedding, 3 kept
    kept = sample["ground_embeds"][:, 0].tolist()
    assert len(kept) == 3 and kept == sorted(kept) and 2.0 not in kept  # a subset, in shard order
    assert torch.equal(dataset.prepare(row)["ground_embeds"], sample["ground_embeds"])  # same seed, epoch, tile
    evaluation = PairsIterableDataset(stream, _config(root, target="text_embedding", train=False, max_photos=3))
    assert evaluation.prepare(row)["ground_embeds"][:, 0].tolist() == [0.0, 1.0, 3.0]  # the first three


@pytest.mark.parametrize("train", [True, False])
def test_arrow_rows_give_the_same_samples_as_python_rows(tiny_pairs, train: bool) -> None:
    root, expected = tiny_pairs
    config = _config(root, target="embedding", train=train, max_photos=2)
    python_rows = list(open_pairs_stream(config))
    arrow_rows = list(open_pairs_stream(config, arrow=True))
    assert all(isinstance(row, pa.Table) and row.num_rows == 1 for row in arrow_rows)
    slow, fast = PairsIterableDataset(None, config), PairsIterableDataset(None, config)
    compared = 0
    for row, table in zip(python_rows, arrow_rows, strict=True):
        a, b = slow.prepare(row), fast.prepare_arrow(table)
        assert (a is None) == (b is None)
        if a is None:
            continue
        assert a["tile_id"] == b["tile_id"] and a.keys() == b.keys()
        for key in ("pixel_values", "ground_embeds", "ground_pixel_coords", "ground_in_view"):
            assert torch.equal(a[key], b[key]), key
        compared += 1
    assert compared == len(expected)
    assert slow.stats == fast.stats  # skipped tiles, photos without embedding, photos over max_photos


@pytest.mark.parametrize("train", [True, False])
def test_arrow_tables_of_many_rows_give_the_one_row_samples(tiny_pairs, monkeypatch, train: bool) -> None:
    """The loader reads its Arrow stream in groups of rows: the same samples, stats and order as row by row."""
    root, _ = tiny_pairs
    config = _config(root, target="embedding", train=train, max_photos=2, geometry="batched")
    tables = list(open_pairs_stream(config, arrow=True))
    row = tables[0].to_pylist()[0]
    odd = [
        pa.Table.from_pylist([{**row, "tile_id": "no-photos", "photos": None}], schema=tables[0].schema),
        pairs_table([{**row, "tile_id": "null-embedding", "photos": [{**row["photos"][0], "embedding": None}]}]),
    ]
    tables = [tables[0], *odd, *tables[1:]]
    one_by_one, grouped = PairsIterableDataset(None, config), PairsIterableDataset(None, config)
    expected = [one_by_one.prepare_arrow(table) for table in tables]
    got = grouped.prepare_arrow_rows(pa.concat_tables([t.cast(tables[0].schema) for t in tables]))
    assert len(got) == len(expected) and got[1] is None and got[2] is None
    for a, b in zip(expected, got, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert a["tile_id"] == b["tile_id"] and a.keys() == b.keys()
            for key in ("crop", "view", "ground_embeds", "ground_crop_coords"):
                assert torch.equal(a[key], b[key]), key
    assert one_by_one.stats == grouped.stats
    monkeypatch.setattr(loader_module, "ARROW_ROWS", 3)  # groups end inside the stream
    rows = PairsIterableDataset(open_pairs_stream(config), config)
    groups = PairsIterableDataset(open_pairs_stream(config, arrow=True), config)
    for epoch in (0, 1):
        rows.set_epoch(epoch)
        groups.set_epoch(epoch)
        assert [s["tile_id"] for s in rows] == [s["tile_id"] for s in groups]


def test_collate_stacks_decoded_crops_channels_last(tiny_pairs) -> None:
    """Decoded crops (channels-last memory) are stacked with one contiguous copy and equal a plain stack."""
    root, _ = tiny_pairs
    dataset = PairsIterableDataset(None, _config(root, target="embedding", geometry="batched", train=False))
    rows = [row for row, _ in zip(open_pairs_stream(_config(root, train=False)), range(3), strict=False)]
    samples = [dataset.prepare(row) for row in rows]
    assert all(s["crop"].permute(1, 2, 0).is_contiguous() for s in samples)
    crops = collate_pairs(samples)["crops"]
    assert crops.shape == (3, 3, CROP, CROP) and crops.permute(0, 2, 3, 1).is_contiguous()
    assert torch.equal(crops, torch.stack([s["crop"].contiguous() for s in samples]))
    planar = [{**s, "crop": s["crop"].contiguous()} for s in samples]  # (3, H, W) memory: a plain stack
    assert torch.equal(collate_pairs(planar)["crops"], crops)


def test_arrow_rows_skip_null_photo_lists_and_null_embeddings(tiny_pairs) -> None:
    root, _ = tiny_pairs
    config = _config(root, target="text_embedding", train=False)
    row = next(iter(open_pairs_stream(config)))
    base = row["photos"][0]
    row["photos"] = [
        {**base, "row": 10.0 + k, "col": 20.0, "text_embedding": None if k == 1 else [float(k)] * DIM} for k in range(3)
    ]
    dataset = PairsIterableDataset(None, config)
    table = pairs_table([row])
    sample = dataset.prepare_arrow(table)
    assert sample["ground_embeds"][:, 0].tolist() == [0.0, 2.0]
    assert sample["ground_pixel_coords"][:, 0].tolist() == [10.0 - (CROP - 224) / 2, 12.0 - (CROP - 224) / 2]
    assert dataset.stats["photos_without_text_embedding"] == 1
    empty = pa.Table.from_pylist([{**row, "photos": None}], schema=pairs_arrow_schema())
    assert dataset.prepare_arrow(empty) is None
    assert dataset.stats["tiles_skipped_no_target"] == 1


@pytest.mark.parametrize("arrow", [False, True])
def test_image_and_text_targets_side_by_side(tiny_pairs, arrow: bool) -> None:
    """target='image+text': both precomputed embeddings of each photo, photos lacking either dropped."""
    root, _ = tiny_pairs
    row = next(iter(open_pairs_stream(_config(root, train=False))))
    base = row["photos"][0]
    row["photos"] = [
        {
            **base,
            "row": 100.0 + k,
            "embedding": None if k == 1 else [float(k)] * DIM,
            "text_embedding": None if k == 2 else [-float(k)] * DIM,
        }
        for k in range(4)
    ]
    dataset = PairsIterableDataset(None, _config(root, target="image+text", train=False))
    table = pairs_table([row])
    sample = dataset.prepare_arrow(table) if arrow else dataset.prepare(row)
    assert sample["ground_embeds"][:, 0].tolist() == [0.0, 3.0]
    assert sample["ground_text_embeds"][:, 0].tolist() == [0.0, -3.0]
    assert sample["ground_pixel_coords"][:, 0].tolist() == [100.0 - 112, 103.0 - 112]
    assert dataset.stats["photos_without_embedding_and_text_embedding"] == 2
    keys = ("ground_embeds", "ground_text_embeds", "ground_pixel_coords", "ground_in_view")
    short = {**sample, **{key: sample[key][:1] for key in keys}}
    batch = collate_pairs([sample, short])
    assert batch["ground_text_embeds"].shape == (2, 2, DIM)
    torch.testing.assert_close(batch["ground_text_embeds"][0], sample["ground_text_embeds"])
    assert torch.count_nonzero(batch["ground_text_embeds"][1, 1]) == 0 and batch["ground_mask"][1].tolist() == [
        True,
        False,
    ]


def test_right_angle_views_of_a_whole_small_tile(tmp_path: Path) -> None:
    """64 px tiles seen whole (EuroSAT): only right angles fit, and photos stay on their marks."""
    rng = np.random.default_rng(3)
    (tmp_path / "data").mkdir()
    (tmp_path / "README.md").write_text(README)
    tile = rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    photo = _photo(rng, 0, 10.5, 50.5, embed=True)
    row = {
        "tile_id": "small",
        "image": {"bytes": _png(tile), "path": None},
        "bands": None,
        "band_names": [],
        "crs": None,
        "transform": None,
        "gsd": 10.0,
        "sensor": "sentinel2",
        "acquisition_date": None,
        "center_lat": None,
        "center_lon": None,
        "raster": "x",
        "photos": [photo],
    }
    pq.write_table(pairs_table([row]), tmp_path / "data" / "train-0.parquet")
    config = _config(tmp_path, target="embedding", view_size=64, right_angles=True, translate=True)
    dataset = PairsIterableDataset(None, config)
    mean, std = np.asarray(OPENAI_CLIP_MEAN), np.asarray(OPENAI_CLIP_STD)
    views = set()
    for epoch in range(12):
        dataset.epoch = epoch
        sample = dataset.prepare(row)
        pixels = np.rint((sample["pixel_values"].numpy().transpose(1, 2, 0) * std + mean) * 255).astype(np.uint8)
        views.add(pixels.tobytes())
        r, c = sample["ground_pixel_coords"][0].floor().int().tolist()
        assert np.array_equal(pixels[r, c], tile[10, 50])  # the photo's pixel moved with the view
        assert any(np.array_equal(pixels, np.rot90(tile, k)) for k in range(4))  # exact rotation, no blur
    assert len(views) == 4
    with pytest.raises(ValueError, match="disable rotation"):
        PairsIterableDataset(None, _config(tmp_path, target="embedding", view_size=64)).prepare(
            row
        )  # any angle needs a larger crop


# ------------------------------------------------- batched geometry on the device == the per-sample path in workers
def _photo_preprocess(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1) / 255


@pytest.mark.parametrize(("train", "target"), [(True, "embedding"), (False, "embedding"), (True, "pixels")])
def test_batched_geometry_gives_the_per_sample_batches(tiny_pairs, train: bool, target: str) -> None:
    """Views (image level) and photo positions (pixel level), precomputed and on-the-fly targets: the batch that
    render_batch_views builds from decoded crops equals the one the per-sample PIL path builds, within one 8-bit
    level of bilinear interpolation (the per-sample path rounds its views to 8 bits)."""
    from graft_hf.pairs.loader import render_batch_views

    root, _ = tiny_pairs
    preprocess = _photo_preprocess if target == "pixels" else None
    batches = {}
    for geometry in ("per_sample", "batched"):
        config = _config(root, train=train, target=target, geometry=geometry)
        batches[geometry] = list(build_pairs_dataloader(config, preprocess))
    assert len(batches["batched"]) == len(batches["per_sample"]) > 3
    one_level = 1.0 / (255 * min(OPENAI_CLIP_STD))
    for reference, raw in zip(batches["per_sample"], batches["batched"], strict=True):
        assert raw["crops"].dtype == torch.uint8 and raw["crops"].shape[1:] == (3, CROP, CROP)
        assert "pixel_values" not in raw, "the loader only decodes and collates"
        got = render_batch_views(raw)
        assert got.keys() == reference.keys()
        assert got["tile_id"] == reference["tile_id"]
        difference = (got["pixel_values"] - reference["pixel_values"]).abs()
        assert float(difference.max()) <= 1.01 * one_level and float(difference.mean()) <= 0.5 * one_level
        torch.testing.assert_close(got["ground_pixel_coords"], reference["ground_pixel_coords"], rtol=0, atol=1e-4)
        assert torch.equal(got["ground_in_view"], reference["ground_in_view"])
        for key in ("ground_mask", "ground_embeds", "ground_pixel_values"):
            if key in reference:
                assert torch.equal(got[key], reference[key]), key
    if train:  # rotated views: the photo marks (9 px squares) must still sit under their photos
        rotated = batches["batched"][0]["views"][:, 3].abs().max()
        assert float(rotated) > 0.1, "random views are rotated"


def test_render_views_matches_float64_reference_on_texture() -> None:
    """render_views against extract_view (float64 grid_sample per view) on a textured crop, random angles."""
    from graft_hf.pairs.augment import extract_view, random_view, render_views, view_vector

    rng = np.random.default_rng(3)
    crops = torch.from_numpy(rng.integers(0, 256, size=(4, 300, 260, 3), dtype=np.uint8))
    views = [random_view(rng, 300, 260, 96) for _ in range(4)]
    vectors = torch.from_numpy(np.stack([view_vector(v) for v in views]))
    got = render_views(crops, vectors, 96, (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255), dtype=torch.float64)
    for i, view in enumerate(views):
        want = extract_view(crops[i].permute(2, 0, 1).double(), view)
        torch.testing.assert_close(got[i], want, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="crops must have shape"):
        render_views(crops[0], vectors, 96, (0, 0, 0), (1, 1, 1))


def test_collate_refuses_crops_of_different_sizes(tiny_pairs) -> None:
    root, _ = tiny_pairs
    dataset = PairsIterableDataset(None, _config(root, target="embedding", geometry="batched", train=False))
    stream = open_pairs_stream(_config(root, target="embedding", train=False))
    rows = [row for row, _ in zip(stream, range(2), strict=False)]
    samples = [dataset.prepare(row) for row in rows]
    samples[1]["crop"] = samples[1]["crop"][:, :300]
    with pytest.raises(ValueError, match="one crop_size or use geometry='per_sample'"):
        collate_pairs(samples)


def test_batched_geometry_with_workers_collates_into_shared_memory(tiny_pairs) -> None:
    root, _ = tiny_pairs
    crops = {}
    for workers in (0, 2):
        config = _config(root, target="embedding", geometry="batched", train=False, num_workers=workers)
        for batch in build_pairs_dataloader(config):
            assert batch["crops"].shape[1:] == (3, CROP, CROP)
            crops.update({(workers, tile): crop for tile, crop in zip(batch["tile_id"], batch["crops"], strict=True)})
    tiles = {tile for _, tile in crops}
    assert len(crops) == 2 * len(tiles)
    for tile in tiles:
        assert torch.equal(crops[(0, tile)], crops[(2, tile)])
