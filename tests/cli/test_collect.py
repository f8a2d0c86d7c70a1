"""`graft collect photos|download|imagery` and `graft pairs filter`: flags fill the configs (unset flags keep the
dataclass defaults), library errors name the flag, bad input and missing credentials are clean errors. The commands
running for real are the end-to-end test (tests/collect/test_end_to_end.py)."""

from __future__ import annotations

import pytest

from graft_hf_cli import build_parser, main
from graft_hf_cli._fields import fields_from_args


def test_flags_fill_the_configs_and_unset_flags_keep_the_defaults() -> None:
    from graft_hf.collect.config import CollectPhotosConfig, DownloadConfig, ImageryConfig

    args = build_parser().parse_args(
        ["collect", "photos", "--bbox=-99.2,47,-99.1,47.05", "--start", "2016-01-01", "--end", "2016-12-31", "-o",
         "p.parquet", "--license", "4", "--license", "9", "--cell-size-km", "2"]
    )  # fmt: skip
    values = fields_from_args(args, "graft_hf.collect.config", "CollectPhotosConfig")
    config = CollectPhotosConfig(**{k: v for k, v in values.items() if v is not None})
    assert config.bbox == (-99.2, 47.0, -99.1, 47.05) and config.licenses == (4, 9) and config.cell_size_km == 2
    assert config.min_accuracy == 16 and config.endpoint == CollectPhotosConfig.endpoint  # defaults kept
    args = build_parser().parse_args(["collect", "download", "--photos", "p.parquet", "-o", "dl", "--workers", "2"])
    values = fields_from_args(args, "graft_hf.collect.config", "DownloadConfig")
    assert DownloadConfig(**{k: v for k, v in values.items() if v is not None}).workers == 2
    args = build_parser().parse_args(["collect", "imagery", "--photos", "p.parquet", "-o", "i.json"])
    values = fields_from_args(args, "graft_hf.collect.config", "ImageryConfig")
    config = ImageryConfig(**{k: v for k, v in values.items() if v is not None})
    assert config.endpoint.startswith("https://planetarycomputer") and config.max_cloud_cover == 1.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["collect", "photos", "--bbox=-99,47,-98,48", "--start", "2016-01-01", "--end", "2016-12-31", "-o", "p.parquet",
          "--cell-size-km", "0"], "--cell-size-km: must be > 0"),
        (["collect", "photos", "--bbox=-99,47,-98,48", "--start", "2016-12-31", "--end", "2016-01-01", "-o", "p.parquet"],
         "--end: 2016-01-01 is before start 2016-12-31"),
        (["collect", "download", "--photos", "p.parquet", "-o", "dl", "--shard-index", "3"], "--shard-index: must be in"),
        (["collect", "imagery", "--photos", "p.parquet", "-o", "i.json", "--max-cloud-cover", "0"], "--max-cloud-cover"),
        (["pairs", "filter", "--photos", "p.parquet", "-o", "f.parquet", "--outdoor-threshold", "2"],
         "--outdoor-threshold: must be in [0, 1]"),
    ],
)  # fmt: skip
def test_errors_name_the_flag(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_bad_bbox_and_missing_credentials(tmp_path, monkeypatch, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["collect", "photos", "--bbox=-98,47,-99,48", "-o", "p", "--start", "a", "--end", "b"]
        )
    assert "west (-98.0) must be less than east (-99.0)" in capsys.readouterr().err
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    monkeypatch.delenv("FLICKR_API_SECRET", raising=False)
    argv = ["collect", "photos", "--bbox=-99,47,-98,48", "--start", "2016-01-01", "--end", "2016-12-31", "-o",
            str(tmp_path / "p.parquet")]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "FLICKR_API_KEY and FLICKR_API_SECRET not set" in err and "yfcc" in err
    assert not (tmp_path / "p.parquet").exists()
