"""graft_hf.evaluation.images: images of a dataset are checked from their header before they are decoded (a
decompression bomb, an image over the pixel limit, a corrupt file: an error naming the row and file, within
bounded memory), and decode exactly as `datasets` decodes them otherwise.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from datasets import Dataset
from datasets import Image as ImageFeature
from PIL import Image

from graft_hf.evaluation.images import ImageReadError, read_image_rows
from tests.helpers.data import EUROSAT, needs_eurosat
from tests.helpers.hostile import measure, png_bomb


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@needs_eurosat
def test_rows_decode_exactly_as_datasets_decodes_them() -> None:
    from graft_hf.evaluation.datasets import load_split

    split = load_split(str(EUROSAT), "test")
    ours = read_image_rows(split, "image", 100, 164)
    theirs = split[100:164]["image"]
    assert len(ours) == 64
    for a, b in zip(ours, theirs, strict=True):
        assert a.mode == b.mode and a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


def test_mode_exif_and_paths_follow_datasets(tmp_path) -> None:
    rgba = np.random.default_rng(0).integers(0, 255, (6, 9, 4), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: datasets applies the orientation
    rotated = io.BytesIO()
    Image.fromarray(rgba[..., :3]).save(rotated, format="JPEG", exif=exif.tobytes())
    path = tmp_path / "on-disk.png"
    path.write_bytes(_png(rgba))
    data = Dataset.from_dict(
        {"image": [{"bytes": _png(rgba), "path": None}, {"bytes": rotated.getvalue(), "path": None},
                   {"bytes": None, "path": str(path)}]},
    ).cast_column("image", ImageFeature(mode="RGB"))  # fmt: skip
    ours = read_image_rows(data, "image", 0, 3)
    theirs = data[0:3]["image"]
    assert [im.size for im in ours] == [(9, 6), (6, 9), (9, 6)]
    for a, b in zip(ours, theirs, strict=True):
        assert a.mode == b.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b))


def test_bad_rows_are_named(tmp_path) -> None:
    good = _png(np.zeros((4, 4, 3), dtype=np.uint8))
    bomb = png_bomb(tmp_path / "bomb.png").read_bytes()  # over Pillow's own bomb threshold
    over = png_bomb(tmp_path / "over.png", side=5000).read_bytes()  # under Pillow's, over ours
    big = _png(np.zeros((50, 60), dtype=np.uint8))
    rows = [{"bytes": good, "path": "a.png"}, {"bytes": b"\x89PNG\r\n\x1a\nbroken", "path": "broken.png"},
            {"bytes": bomb, "path": "bomb.png"}, {"bytes": big, "path": "big.png"},
            {"bytes": over, "path": "over.png"}]  # fmt: skip
    data = Dataset.from_dict({"image": rows}).cast_column("image", ImageFeature())
    assert read_image_rows(data, "image", 0, 1)[0].size == (4, 4)
    with pytest.raises(ImageReadError, match=r"cannot decode image row 1 \(broken.png\): UnidentifiedImageError"):
        read_image_rows(data, "image", 0, 2)
    with pytest.raises(ImageReadError, match=r"image row 2 \(bomb.png\): DecompressionBombError"):
        read_image_rows(data, "image", 2, 3)
    with pytest.raises(ImageReadError, match=r"image row 4 \(over.png\) is 5000 x 5000 = 25,000,000 pixels, over"):
        read_image_rows(data, "image", 4, 5)
    with pytest.raises(ImageReadError, match=r"image row 3 \(big.png\) is 60 x 50 = 3,000 pixels, over the limit"):
        read_image_rows(data, "image", 3, 4, max_pixels=2_999)


def test_a_decompression_bomb_in_a_dataset_costs_little(tmp_path) -> None:
    folder = tmp_path / "bombs" / "water"
    folder.mkdir(parents=True)
    png_bomb(folder / "bomb.png", side=5000)
    setup = (
        "from datasets import load_dataset\n"
        "from graft_hf.evaluation.images import read_image_rows\n"
        f"split = load_dataset('imagefolder', data_dir={str(tmp_path / 'bombs')!r})['train']"
    )
    result = measure(setup, "read_image_rows(split, 'image', 0, 1)")
    assert (
        result["outcome"].startswith("ImageReadError: image row 0 (")
        and "bomb.png) is 5000 x 5000" in (result["outcome"])
    )
    assert result["growth_mb"] < 300 and result["seconds"] < 1.0, result
