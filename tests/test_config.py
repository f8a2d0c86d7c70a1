"""graft_hf.config: strict config dataclasses, dict/YAML/override loading, errors that name the field."""

from dataclasses import field
from typing import Literal

import pytest

from graft_hf.config import ConfigError, config_dataclass, config_from_dict, config_to_dict, parse_overrides, require


@config_dataclass
class _Optim:
    """Optimiser.

    Attributes:
        lr: Peak learning rate.
        betas: Adam betas.
        precision: Autocast precision.
    """

    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    precision: Literal["no", "bf16"] = "no"

    def validate_lr(self) -> None:
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")


@config_dataclass
class _Run:
    """A run.

    Attributes:
        steps: Optimizer steps.
        optim: The optimiser.
    """

    steps: int | None = None
    optim: _Optim = field(default_factory=_Optim)


def test_nested_dict_with_yaml_spellings() -> None:
    run = config_from_dict(_Run, {"steps": 3, "optim": {"lr": "1e-5", "betas": (0.9, 1), "precision": False}})
    assert run == _Run(steps=3, optim=_Optim(lr=1e-5, betas=[0.9, 1.0], precision="no"))
    assert config_to_dict(run) == {"steps": 3, "optim": {"lr": 1e-5, "betas": [0.9, 1.0], "precision": "no"}}


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"optim": {"lr": -1}}, "optim.lr", "must be > 0"),
        ({"optim": {"lr": "fast"}}, "optim.lr", "expected float"),
        ({"optim": {"precision": "fp8"}}, "optim.precision", "fp8"),
        ({"stepz": 1}, "stepz", "valid keys here: steps, optim"),
        ({"optim": {"lrr": 1}}, "optim.lrr", "optim.lr"),
        ({"steps": 1.5}, "steps", "1.5"),
    ],
)
def test_errors_name_the_dotted_key(values: dict, key: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        config_from_dict(_Run, values)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}: ")


def test_python_spellings_are_accepted() -> None:
    assert _Optim(lr=1, betas=(0.9, 1.0)) == _Optim(lr=1.0, betas=[0.9, 1.0])
    optim = _Optim()
    optim.lr = 2
    assert isinstance(optim.lr, float)


def test_direct_construction_and_assignment_are_checked() -> None:
    with pytest.raises(ValueError, match="lr: must be > 0"):
        _Optim(lr=0.0)
    with pytest.raises(ValueError, match="lr: expected float"):
        _Optim(lr="a")  # type: ignore[arg-type]
    optim = _Optim()
    with pytest.raises(ConfigError) as info:
        optim.precision = "fp16"  # type: ignore[assignment]
    assert info.value.key == "precision"


def test_overrides_are_yaml_and_nested() -> None:
    assert parse_overrides(["optim.lr=1e-5", "optim.betas=[0.9,0.98]", "steps=100"]) == {
        "optim": {"lr": "1e-5", "betas": [0.9, 0.98]},
        "steps": 100,
    }
    assert config_from_dict(_Run, parse_overrides(["optim.lr=1e-5"])).optim.lr == 1e-5
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["steps"])
