"""Simulated ground observations of the EuroSAT benchmark: clean vocabulary, sampler rules, determinism."""

from __future__ import annotations

import pytest

from graft_hf.quickstart.observations import (
    DISTRACTORS,
    EUROSAT_CLASSNAMES,
    EUROSAT_LABELS,
    OBSERVATIONS,
    ObservationSampler,
    all_observation_texts,
    vocabulary_overlap,
)


def test_no_observation_shares_a_word_with_the_evaluation_class_names():
    assert vocabulary_overlap() == {}
    # The check itself can fail: a class-name word inside an observation is reported.
    assert vocabulary_overlap(["tall pine trees"]) != {}


def test_every_label_has_a_pool_and_names_line_up():
    assert list(OBSERVATIONS) == EUROSAT_LABELS and len(EUROSAT_CLASSNAMES) == len(EUROSAT_LABELS)
    assert all(len(set(pool)) == len(pool) >= 15 for pool in OBSERVATIONS.values())
    texts = all_observation_texts()
    assert len(texts) == len(set(texts)) == sum(map(len, OBSERVATIONS.values())) + len(DISTRACTORS)


def test_sampler_counts_distractors_and_determinism():
    sampler = ObservationSampler(min_photos=1, max_photos=25, distractor_rate=0.3, seed=7)
    draws = [sampler.sample("Forest", i) for i in range(400)]
    assert all(1 <= len(d) <= 25 for d in draws)
    assert {len(d) for d in draws} >= {1, 25}
    flat = [t for d in draws for t in d]
    assert set(flat) <= set(OBSERVATIONS["Forest"]) | set(DISTRACTORS)
    rate = sum(t in DISTRACTORS for t in flat) / len(flat)
    assert 0.25 < rate < 0.35
    assert draws[5] == ObservationSampler(distractor_rate=0.3, seed=7).sample("Forest", 5)
    assert draws[5] != ObservationSampler(distractor_rate=0.3, seed=8).sample("Forest", 5)


def test_sampler_errors():
    with pytest.raises(ValueError, match="unknown EuroSAT label"):
        ObservationSampler().sample("Desert", 0)
    with pytest.raises(ValueError, match="min_photos"):
        ObservationSampler(min_photos=0)
    with pytest.raises(ValueError, match="distractor_rate"):
        ObservationSampler(distractor_rate=1.0)
