"""The shipped prompt templates and class-name sets."""

from __future__ import annotations

from graft_hf.evaluation.templates import (
    EUROSAT_CLASSNAMES,
    SATELLITE_TEMPLATES,
    TEMPLATE_SETS,
    format_prompts,
    get_classnames,
    get_templates,
)


def test_shipped_templates_and_classnames():
    assert "a satellite image of {}." in SATELLITE_TEMPLATES
    assert "an aerial photo of {}." in SATELLITE_TEMPLATES
    assert "a centered satellite photo of {}." in SATELLITE_TEMPLATES
    for name, temps in TEMPLATE_SETS.items():
        assert get_templates(name) == temps
        assert all(t.count("{}") == 1 for t in temps)
    assert len(get_classnames("eurosat")) == 10 == len(EUROSAT_CLASSNAMES)
    assert format_prompts(["a", "b"], ["x {}", "y {}"]) == ["x a", "y a", "x b", "y b"]
    assert get_templates("a photo of {}!") == ("a photo of {}!",)
