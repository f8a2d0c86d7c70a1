"""The recipe end to end, through the `graft` command as a user runs it: a synthetic Flickr population over the real
NAIP rasters -> `graft collect photos` (loopback Flickr API) -> `graft collect download` (loopback image host) ->
`graft pairs filter` (tiny random CLIP teacher) -> `graft collect imagery` (real STAC API over COGs) ->
`graft pairs build` -> `graft pairs embed` -> 3 steps of `graft train`."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from graft_hf_cli import main
from tests.helpers.data import shared_data
from tests.helpers.flickr_server import API_KEY, API_SECRET, make_population, serve_flickr
from tests.helpers.loopback import LoopbackServer
from tests.helpers.photo_server import PhotoHost
from tests.helpers.photo_server import build_app as photo_app
from tests.helpers.stac_server import StacServer, naip_cogs, naip_item, write_catalog
from tests.helpers.tiny_clip import save_tiny_clip

#: Inside the real NAIP rasters of ../shared/data/naip-nd (about -99.185..-99.124 E, 47.004..47.036 N).
BBOX = (-99.18, 47.006, -99.13, 47.034)


def _graft(capsys: pytest.CaptureFixture, *argv: object) -> dict:
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err[-3000:]
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :]) if "{" in out else {}


@pytest.fixture
def servers(tmp_path):
    """Flickr API (cap 60) over 180 photos, three of them re-uploads of another photo's image; the image host; STAC."""
    shared_data("naip-nd")
    with LoopbackServer(photo_app(PhotoHost()), "photo-host") as host:
        photos = make_population(180, BBOX, seed=11, image_base=f"{host.url}/photos", noise=False)
        for copy, original in zip(photos[:3], photos[3:6], strict=True):  # same picture, another id and spot
            copy["url_z"] = original["url_z"]
        with serve_flickr(photos, cap=60) as state, StacServer(tmp_path / "stac-root") as stac:
            items = [naip_item(p, stac.href(p)) for p in naip_cogs(tmp_path / "stac-root" / "stac")]
            write_catalog(tmp_path / "stac-root", {"naip": items})
            yield state, stac


def test_region_and_dates_to_three_training_steps(tmp_path, servers, capsys, monkeypatch) -> None:
    flickr, stac = servers
    monkeypatch.setenv("FLICKR_API_KEY", API_KEY)
    monkeypatch.setenv("FLICKR_API_SECRET", API_SECRET)
    teacher = save_tiny_clip(tmp_path / "teacher", image_size=224, patch_size=32)
    bbox = "--bbox=" + ",".join(map(str, BBOX))

    collected = _graft(
        capsys, "collect", "photos", bbox, "--start", "2015-01-01", "--end", "2020-12-31", "-o", tmp_path / "photos.parquet",
        "--endpoint", flickr.endpoint, "--per-page", 25, "--result-cap", 60, "--requests-per-second", 1000,
        "--max-photos-per-cell", 12, "--no-progress",
    )  # fmt: skip
    assert collected["photos_found"] == 180  # over the cap of 60: found by splitting the region
    assert 0 < collected["photos_kept"] < 180  # at most 12 per 1 km cell
    downloaded = _graft(capsys, "collect", "download", "--photos", tmp_path / "photos.parquet", "-o", tmp_path / "dl",
                        "--threads", 4, "--shard-size", 40, "--no-progress")  # fmt: skip
    assert downloaded["complete"] and downloaded["photos_downloaded"] == collected["photos_kept"]

    filtered = _graft(capsys, "pairs", "filter", "--photos", tmp_path / "dl" / "photos.parquet", "-o",
                      tmp_path / "filtered.parquet", "--teacher", teacher, "--outdoor-threshold", 0.0, "--device", "cpu",
                      "--no-progress")  # fmt: skip
    kept = pq.read_table(tmp_path / "filtered.parquet")
    scores = np.asarray(kept.column("outdoor_score").to_pylist())
    assert np.all((scores >= 0) & (scores <= 1)) and len(set(kept.column("image_hash").to_pylist())) == kept.num_rows
    downloaded_ids = set(pq.read_table(tmp_path / "dl" / "photos.parquet").column("photo_id").to_pylist())
    kept_ids = set(kept.column("photo_id").to_pylist())
    ids = [p["id"] for p in flickr.photos]
    both = [(c, o) for c, o in zip(ids[:3], ids[3:6], strict=True) if {c, o} <= downloaded_ids]
    assert both and all((c in kept_ids) != (o in kept_ids) for c, o in both)  # one of each re-upload pair stays
    assert filtered["removed"] == {"near_duplicate": len(both)}
    assert filtered["photos_kept"] == kept.num_rows

    imagery = _graft(capsys, "collect", "imagery", "--photos", tmp_path / "filtered.parquet", "-o",
                     tmp_path / "items.json", "--endpoint", stac.url, "--no-progress")  # fmt: skip
    assert imagery["photos_with_scene"] == kept.num_rows and not imagery["signed"]

    _graft(capsys, "pairs", "build", "--photos", tmp_path / "filtered.parquet", "--catalog",
                   tmp_path / "items.json", "-o", tmp_path / "pairs", "--no-progress")  # fmt: skip
    built = json.loads((tmp_path / "pairs" / "build_report.json").read_text())
    assert built["tiles"]["kept"] > 0
    tiles = pq.read_table(tmp_path / "pairs" / "data").to_pylist()
    photos = [p for t in tiles for p in t["photos"]]
    assert all(p["license"] and p["owner"] and p["image"] for p in photos)  # licence and owner end to end
    assert "20200831" in tiles[0]["raster"]  # the newest NAIP scene, read over HTTP

    _graft(capsys, "pairs", "embed", tmp_path / "pairs", "--teacher", teacher, "--device", "cpu")
    run = tmp_path / "run"
    overrides = {
        "data.path": tmp_path / "pairs", "data.num_workers": 0, "data.shuffle_buffer": 8, "data.interleave_shards": 1,
        "teacher.name_or_path": teacher, "teacher.dtype": "float32", "output_dir": run, "train.batch_size": 4,
        "train.max_steps": 3, "train.log_every": 1, "train.save_every": 0, "train.eval_every": 0,
        "train.tracker": "none", "train.progress_bar": False, "train.mixed_precision": "no", "train.cpu": True,
        "optim.warmup_steps": 0,
    }  # fmt: skip
    assert main(["train", "naip-vitb16", *[a for k, v in overrides.items() for a in ("-o", f"{k}={v}")]]) == 0
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "loss" in s][-1] == 3 and all(
        np.isfinite(s["loss"]) for s in steps if "loss" in s
    )
    assert (run / "model" / "model.safetensors").is_file()
    written = [f for f in tmp_path.rglob("*") if f.is_file()]  # tables, state, reports, shards, card, run
    assert not [f for f in written if API_KEY.encode() in f.read_bytes() or API_SECRET.encode() in f.read_bytes()]
