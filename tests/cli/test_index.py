"""`graft index` over pairs shards and a GeoTIFF folder, searched with `graft search`; errors that name the flag;
hostile files (a raster declaring 100000 x 100000 pixels, a decompression bomb) refused with their name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from graft_hf_cli import main as graft_main


def _pairs_like(root: Path) -> None:
    """A tiny pairs-schema dataset (image + tile metadata) with distinct colours."""
    from datasets import Dataset

    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 220), (20, 20, 20)]
    rows = {
        "tile_id": [f"tile-{i}" for i in range(5)],
        "image": [Image.new("RGB", (48, 48), c) for c in colours],
        "center_lat": [46.0 + i for i in range(5)],
        "center_lon": [-100.0 - i for i in range(5)],
        "acquisition_date": [f"2020-06-0{i + 1}" for i in range(5)],
        "sensor": ["naip"] * 5,
    }
    (root / "data").mkdir(parents=True)
    Dataset.from_dict(rows).to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))


def test_index_pairs_then_search_json_and_grid(model_dir, tmp_path, capsys):
    _pairs_like(tmp_path / "pairs")
    index_dir = tmp_path / "index"
    assert (
        graft_main(["index", "--model", str(model_dir), "--data", str(tmp_path / "pairs"), "-o", str(index_dir)]) == 0
    )
    assert "indexed 5 images (16-d)" in capsys.readouterr().out
    argv = ["search", str(index_dir), "-q", "solar farm", "-q", "lake", "-k", "3", "--json"]
    assert graft_main([*argv, "--grid", str(tmp_path / "grid.png")]) == 0
    printed = capsys.readouterr().out
    rows = json.loads(printed[: printed.rindex("]") + 1])
    assert [r["query"] for r in rows] == ["solar farm", "lake"]
    for hit in rows[0]["hits"]:
        i = int(hit["tile_id"].split("-")[1])
        assert hit["lat"] == pytest.approx(46.0 + i) and hit["lon"] == pytest.approx(-100.0 - i)
        assert hit["date"] == f"2020-06-0{i + 1}"
    scores = [h["score"] for h in rows[0]["hits"]]
    assert scores == sorted(scores, reverse=True)
    # The exact ranking equals the model's own cosine ranking.
    from graft_hf.evaluation.encoders import load_encoder

    encoder = load_encoder(str(model_dir))
    images = [
        Image.new("RGB", (48, 48), c)
        for c in [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 220), (20, 20, 20)]
    ]
    image_embeds = encoder.encode_images(images)
    text = encoder.encode_texts(["solar farm"])
    cosine = (text / text.norm()) @ (image_embeds / image_embeds.norm(dim=-1, keepdim=True)).T
    assert [h["tile_id"] for h in rows[0]["hits"]] == [
        f"tile-{i}" for i in cosine[0].argsort(descending=True)[:3].tolist()
    ]
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.height >= 2 * 96


def _geotiff(path: Path, west: float, north: float) -> None:
    import rasterio
    from affine import Affine

    data = np.random.default_rng(int(west) % 97).integers(0, 255, (4, 40, 40), dtype=np.uint8)
    profile = {"driver": "GTiff", "width": 40, "height": 40, "count": 4, "dtype": "uint8", "crs": "EPSG:26914"}
    with rasterio.open(path, "w", transform=Affine(5.0, 0.0, west, 0.0, -5.0, north), **profile) as dst:
        dst.write(data)


def test_index_geotiff_folder_with_coordinates_and_approximate_search(model_dir, tmp_path, capsys):
    pytest.importorskip("faiss")
    folder = tmp_path / "naip"
    folder.mkdir()
    for i in range(4):
        _geotiff(folder / f"tile_{i}.tif", 500_000 + 1000 * i, 5_200_000)  # North Dakota, UTM 14N
    index_dir = tmp_path / "index"
    argv = ["index", "--model", str(model_dir), "--data", str(folder), "-o", str(index_dir), "--approximate", "hnsw"]
    assert graft_main([*argv, "--no-progress"]) == 0
    capsys.readouterr()
    assert graft_main(["search", str(index_dir), "-q", "farmland", "-k", "10", "--approximate", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["hits"]
    assert len(hits) == 4  # k clipped to the archive size
    for hit in hits:
        assert 46.8 < hit["lat"] < 47.1 and -99.1 < hit["lon"] < -98.9, hit
    assert graft_main(["search", str(index_dir), "-q", "farmland", "-k", "2", "--grid", str(tmp_path / "g.png")]) == 0
    out = capsys.readouterr().out
    assert "tile_" in out and "46.9" in out and (tmp_path / "g.png").is_file()


def test_index_and_search_errors_name_flags(model_dir, tmp_path, capsys):
    argv = ["index", "--model", str(model_dir), "--data", str(tmp_path / "missing"), "-o", str(tmp_path / "i")]
    assert graft_main(argv) == 1
    assert "--data: data folder" in capsys.readouterr().err
    _pairs_like(tmp_path / "pairs")
    argv = ["index", "--model", str(model_dir), "--data", str(tmp_path / "pairs"), "--split", "test", "-o", "x"]
    assert graft_main(argv) == 1
    assert "--split: dataset" in capsys.readouterr().err
    index_dir = tmp_path / "index"
    assert (
        graft_main(["index", "--model", str(model_dir), "--data", str(tmp_path / "pairs"), "-o", str(index_dir)]) == 0
    )
    capsys.readouterr()
    assert graft_main(["search", str(index_dir), "-q", "lake", "--approximate"]) == 1
    assert "rebuild it with --approximate 'ivf' or 'hnsw'" in capsys.readouterr().err


def test_index_refuses_hostile_files_naming_them(model_dir, tmp_path, capsys):
    from tests.helpers.hostile import huge_tiff, png_bomb

    folder = tmp_path / "tiles"
    folder.mkdir()
    Image.new("RGB", (16, 16), (10, 120, 10)).save(folder / "ok.png")
    huge = huge_tiff(folder)
    argv = ["index", "--model", str(model_dir), "--data", str(folder), "-o", str(tmp_path / "i"), "--no-progress"]
    assert graft_main(argv) == 1
    assert f"{huge} is 100000 x 100000 = 10,000,000,000 pixels, over the image processor's limit" in (
        capsys.readouterr().err
    )
    huge.unlink()
    bomb = png_bomb(folder / "bomb.png")
    assert graft_main(argv) == 1
    assert f"cannot decode image file {bomb}: Image size (400000000 pixels) exceeds limit" in capsys.readouterr().err
