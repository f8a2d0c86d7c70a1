"""EuroSAT mosaics: the ground truth is the tile placement, tiles used evenly, observations inside their tile."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from graft_hf.quickstart.mosaic import build_mosaics, placement_observations
from graft_hf.quickstart.observations import EUROSAT_LABELS, ObservationSampler


def test_ground_truth_map_is_the_tile_placement(test_split) -> None:
    mosaics = build_mosaics(test_split, num_mosaics=5, grid=4, tile_size=32, seed=3, name="test")
    assert mosaics.tile_indices.shape == (5, 4, 4) and mosaics.size == 128 and mosaics.gsd == 20.0
    for k in (0, 3):
        image, truth = mosaics.image(k), mosaics.label_map(k)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8 and truth.shape == (128, 128)
        assert len(np.unique(mosaics.tile_indices[k])) == 16  # no tile twice in one mosaic
        for r, c in ((0, 0), (1, 2), (3, 3)):
            index = int(mosaics.tile_indices[k, r, c])
            # The block is exactly the tile's pixels, box-downsampled from 64 to 32 px.
            expected = np.asarray(test_split.decode(index).resize((32, 32), Image.Resampling.BOX))
            np.testing.assert_array_equal(image[32 * r : 32 * r + 32, 32 * c : 32 * c + 32], expected)
            block = truth[32 * r : 32 * r + 32, 32 * c : 32 * c + 32]
            assert (block == test_split.labels[index]).all()
    # Deterministic for a seed, different for another seed.
    again = build_mosaics(test_split, num_mosaics=5, grid=4, tile_size=32, seed=3, name="test")
    np.testing.assert_array_equal(again.tile_indices, mosaics.tile_indices)
    other = build_mosaics(test_split, num_mosaics=5, grid=4, tile_size=32, seed=4, name="test")
    assert not np.array_equal(other.tile_indices, mosaics.tile_indices)


def test_tiles_are_used_evenly_across_mosaics(test_split) -> None:
    mosaics = build_mosaics(test_split, num_mosaics=30, grid=4, tile_size=16)  # 480 cells over 60 tiles
    uses = np.bincount(mosaics.tile_indices.reshape(-1), minlength=60)
    assert uses.min() >= 7 and uses.max() <= 9
    for k in range(30):
        assert len(np.unique(mosaics.tile_indices[k])) == 16
    with pytest.raises(ValueError, match="at least 16 distinct tiles"):
        build_mosaics(load_eurosat_split_small(test_split, 10), num_mosaics=1)


def load_eurosat_split_small(split, n: int):
    from graft_hf.quickstart.eurosat import EuroSATSplit

    return EuroSATSplit(split.images[:n], split.labels[:n], split.filenames[:n], split.label_names, {})


def test_observations_of_a_tile_lie_inside_its_block(test_split) -> None:
    mosaics = build_mosaics(test_split, num_mosaics=3, grid=4, tile_size=32, seed=0)
    sampler = ObservationSampler(min_photos=1, max_photos=4, distractor_rate=0.0, seed=0)
    pools = {label: set(all_observation_texts_for(label)) for label in EUROSAT_LABELS}
    for k in range(3):
        photos = placement_observations(mosaics, k, sampler)
        cells = mosaics.cell_labels(k)
        seen = set()
        for photo in photos:
            cell = photo["photo_id"].split("-")[-2]  # r<r>c<c>
            r, c = int(cell[1]), int(cell[3])
            seen.add((r, c))
            assert 32 * r <= photo["row"] < 32 * r + 32 and 32 * c <= photo["col"] < 32 * c + 32
            assert photo["text"] in pools[EUROSAT_LABELS[cells[r, c]]]  # drawn for that tile's class
        assert len(seen) == 16  # every tile has at least one observation
    # The same tile in two placements is described independently.
    first = [p["text"] for p in placement_observations(mosaics, 0, sampler)]
    second = [p["text"] for p in placement_observations(mosaics, 1, sampler)]
    assert first != second


def all_observation_texts_for(label: str) -> list[str]:
    from graft_hf.quickstart.observations import OBSERVATIONS

    return OBSERVATIONS[label]
