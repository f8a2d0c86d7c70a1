"""`graft eval`, `graft index`, `graft search` on tiny models and tiny real/synthetic data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from graft_hf_cli import main as graft_main
from tests.helpers.data import SHARED_DATA

EUROSAT = SHARED_DATA / "eurosat-rgb"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from graft_hf import build_processor
    from graft_hf.testing import tiny_graft_model

    path = tmp_path_factory.mktemp("model") / "graft-tiny"
    model = tiny_graft_model(seed=0)
    model.save_pretrained(path)
    build_processor(model.config).save_pretrained(path)
    return path


def test_cli_modules_import_only_the_standard_library():
    code = (
        "import sys, graft_hf_cli; graft_hf_cli.build_parser(); "
        "bad = [m for m in ('torch', 'graft_hf', 'datasets', 'transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))


@pytest.mark.skipif(not EUROSAT.is_dir(), reason=f"real EuroSAT data not found at {EUROSAT}")
def test_graft_eval_subprocess_writes_the_report(model_dir, tmp_path):
    from graft_hf.hub.cards import load_eval_results

    out = tmp_path / "report"
    argv = ["eval", "--model", str(model_dir), "--data", str(EUROSAT), "--limit", "16", "--grid-k", "4"]
    proc = subprocess.run(
        [sys.executable, "-m", "graft_hf_cli", *argv, "--templates", "clip-eurosat", "--no-progress", "-o", str(out)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "graft-tiny on EuroSAT (test, 16 images): top1" in proc.stdout
    assert {p.name for p in out.iterdir()} == {
        "results.json",
        "results.md",
        "model_index.yaml",
        "confusion_matrix.png",
        "retrieval_grid.png",
    }
    results = load_eval_results(out / "results.json")
    assert results[0].metric_type == "accuracy" and results[0].dataset_split == "test"
    assert json.loads((out / "results.json").read_text())["templates"][0] == "a centered satellite photo of {}."


def test_graft_eval_errors_name_the_fix(model_dir, tmp_path, capsys):
    assert graft_main(["eval", "--model", str(model_dir), "--data", str(tmp_path / "nope"), "-o", str(tmp_path)]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        graft_main(["eval", "--model", str(model_dir), "--data", str(tmp_path), "--dataset-kind", "resisc", "-o", "x"])
    assert exit_info.value.code == 2
    folder = tmp_path / "ucm"
    for name in ("forest", "river"):
        (folder / name).mkdir(parents=True)
        Image.new("RGB", (20, 20), (0, 90, 0)).save(folder / name / "a.png")
    argv = ["eval", "--model", "openai/clip-vit-base-patch32", "--data", str(folder), "-o", str(tmp_path / "o")]
    assert graft_main(argv) == 1
    assert "--model DIR" in capsys.readouterr().err


def test_graft_eval_names_flags_where_the_library_names_parameters(model_dir, tmp_path, capsys):
    from datasets import Dataset

    (tmp_path / "ints" / "data").mkdir(parents=True)
    rows = {"image": [Image.new("RGB", (8, 8), (i, i, i)) for i in range(3)], "label": [0, 1, 2]}
    Dataset.from_dict(rows).to_parquet(str(tmp_path / "ints" / "data" / "test-00000-of-00001.parquet"))
    argv = ["eval", "--model", str(model_dir), "--data", str(tmp_path / "ints"), "-o", str(tmp_path / "o")]
    assert graft_main(argv) == 1
    assert (
        "--class-names: integer labels without names: pass the class names in label-id order (or --dataset-kind "
        in capsys.readouterr().err
    )
    assert graft_main([*argv, "--split", "validation"]) == 1
    assert "--split: dataset" in capsys.readouterr().err
    assert graft_main([*argv, "--label-column", "caption"]) == 1
    assert "--label-column: 'caption' is not among" in capsys.readouterr().err
    assert graft_main(["eval", "--data", str(tmp_path / "ints"), "-o", str(tmp_path / "o")]) == 1
    assert "--model: pass a GRAFT or CLIP model directory" in capsys.readouterr().err
    assert graft_main(["eval", "--baseline", "open_clip", *argv[3:], "--class-names", "a,b,c"]) == 1
    assert "--arch: open_clip baselines need an architecture" in capsys.readouterr().err


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


def test_search_errors(tmp_path, capsys):
    assert graft_main(["search", str(tmp_path), "-q", "x"]) == 1
    assert "not a saved EmbeddingIndex" in capsys.readouterr().err
    assert graft_main(["search", str(tmp_path), "-q", "x", "-k", "0"]) == 1
    assert "-k: must be positive, got 0" in capsys.readouterr().err


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
