"""pHash: equal to imagehash's algorithm written the slow obvious way (scipy's DCT, float64), stable under
re-encoding and resizing, far apart for different photos; near-duplicate search equal to the all-pairs greedy."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from graft_hf.pairs.phash import hash_to_int, near_duplicates, phash
from tests.helpers.photo_server import photo_array


def _reference(image: Image.Image) -> str:
    from scipy.fft import dct

    pixels = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    coefficients = dct(dct(pixels, axis=0), axis=1)  # imagehash.phash: scipy.fftpack.dct along rows then columns
    low = coefficients[:8, :8]
    bits = (low > np.median(low)).ravel()
    return "".join(f"{int(''.join(map(str, map(int, bits[i : i + 4]))), 2):x}" for i in range(0, 64, 4))


def _jpeg(array: np.ndarray, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def _distance(a: str, b: str) -> int:
    return int(np.bitwise_count(hash_to_int([a])[0] ^ hash_to_int([b])[0]))


@pytest.mark.parametrize("seed", range(5))
def test_equals_the_reference(seed):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (48 + seed, 64, 3), dtype=np.uint8))
    assert phash(image) == _reference(image) and len(phash(image)) == 16


def test_robust_to_reencoding_and_resizing_but_not_to_other_photos():
    photos = [photo_array(f"p{i}") for i in range(20)]
    for array in photos:
        original = phash(Image.fromarray(array))
        assert _distance(original, phash(_jpeg(array, 60))) <= 4
        assert _distance(original, phash(Image.fromarray(array).resize((200, 150)))) <= 4
    hashes = [phash(Image.fromarray(a)) for a in photos]
    distances = [_distance(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(distances) > 8 and 20 < np.mean(distances) < 44  # different photos: about half the bits


def _greedy(hashes: list[str | None], max_distance: int) -> np.ndarray:
    dropped = np.zeros(len(hashes), dtype=bool)
    for j, h in enumerate(hashes):
        if h is None:
            continue
        dropped[j] = any(not dropped[i] and hashes[i] and _distance(hashes[i], h) <= max_distance for i in range(j))
    return dropped


@pytest.mark.parametrize("max_distance", [0, 2, 4, 7])
def test_near_duplicates_equal_the_all_pairs_greedy(max_distance):
    rng = np.random.default_rng(max_distance)
    base = [int(v) for v in rng.integers(0, 2**63, 60, dtype=np.int64)]
    values = []
    for v in base:  # chains of variants a few bits away, exact repeats and missing hashes
        values.append(v)
        for _ in range(int(rng.integers(0, 3))):
            flips = rng.choice(64, int(rng.integers(0, 9)), replace=False)
            values.append(v ^ int(sum(1 << int(b) for b in flips)))
    hashes: list[str | None] = [f"{v:016x}" for v in values]
    hashes[5] = None
    order = rng.permutation(len(hashes))
    hashes = [hashes[i] for i in order]
    duplicate, first = near_duplicates(hashes, max_distance)
    assert np.array_equal(duplicate, _greedy(hashes, max_distance))
    for j in np.flatnonzero(duplicate):
        assert first[j] < j and not duplicate[first[j]] and _distance(hashes[first[j]], hashes[j]) <= max_distance
