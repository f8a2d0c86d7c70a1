"""EvalConfig and run_eval: the `graft eval` job as a library call."""

import typing

import pytest

from graft_hf.config import ConfigError
from graft_hf.evaluation import encoders, job
from graft_hf.evaluation.datasets import DATASET_KINDS
from graft_hf.evaluation.job import EvalConfig, run_eval


def test_config_choices_are_the_loaders_and_baselines():
    assert typing.get_args(job.DatasetKind) == DATASET_KINDS
    assert typing.get_args(job.Baseline) == typing.get_args(encoders.BaselineKind)


def test_config_rules_name_the_field():
    with pytest.raises(ConfigError) as info:
        EvalConfig(data="d", output_dir="o")
    assert info.value.key == "model"
    with pytest.raises(ConfigError) as info:
        EvalConfig(data="d", output_dir="o", model="m", grid_k=0)
    assert info.value.key == "grid_k"
    assert EvalConfig(data="d", output_dir="o", baseline="open_clip", arch="ViT-B-32").model is None


def test_dataset_errors_name_the_config_field(tmp_path):
    config = EvalConfig(data=str(tmp_path / "missing"), output_dir=str(tmp_path / "o"), model="m")
    with pytest.raises(FileNotFoundError, match="data: dataset folder") as info:
        run_eval(config)
    assert info.value.key == "data"
    (tmp_path / "empty").mkdir()
    config = EvalConfig(data=str(tmp_path / "empty"), output_dir="o", model="m", dataset_kind="bigearthnet")
    with pytest.raises(ValueError, match="data: .* is not a BigEarthNet folder"):
        run_eval(config)
