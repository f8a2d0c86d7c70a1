"""A small SatlasPretrain root in the dataset's real layout (allenai/satlas ``SatlasPretrain.md``).

Two zoom-13 label tiles, each a 512x512 greyscale ``static/<col>_<row>/land_cover.png`` (0 invalid, 1..11 the
land-cover classes), a third tile of the split without a label, and for each label tile:

* Sentinel-2: ``sentinel2/<scene>/tci/<col>_<row>.png`` (512x512 RGB), the first tile in two scenes of which
  ``metadata/image_times.json`` makes the second the latest;
* NAIP: ``naip/<scene>/tci/<col17>_<row17>.png`` (512x512 RGB at zoom 17) for some of the 16x16 sub-tiles, one of
  them with an all-invalid label window.

Every image is painted with :data:`CLASS_COLOURS` of its label (upsampled to the image), so a segmenter that reads
colours back (`ColourSegmenter`) is perfect exactly when images and label windows are aligned.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from graft_hf.evaluation.satlas import LAND_COVER_CLASSES

#: RGB colour painted for every label value (0 invalid is black).
CLASS_COLOURS = np.array(
    [(0, 0, 0), (0, 0, 255), (255, 0, 0), (0, 192, 0), (200, 170, 120), (0, 255, 0), (255, 255, 0), (128, 128, 128),
     (255, 255, 255), (0, 255, 255), (255, 0, 255), (128, 0, 128)],
    dtype=np.uint8,
)  # fmt: skip
LABEL_TILES = ((1867, 3287), (1868, 3287))
UNLABELLED_TILE = (1869, 3287)
#: NAIP sub-tile offsets (col, row) written per label tile; (15, 15) of the first tile is all invalid.
NAIP_OFFSETS = ((0, 0), (3, 1), (15, 15))


def _label(tile_index: int) -> np.ndarray:
    """A 512x512 label: water, developed, tree and crop quadrants in tile 0; grass, tree, bare in tile 1."""
    label = np.zeros((512, 512), dtype=np.uint8)
    if tile_index == 0:
        label[:256, :256], label[:256, 256:], label[256:, :256], label[256:, 256:] = 1, 2, 3, 6
        label[40:56, 100:140] = 2  # developed patch inside water, not aligned with NAIP windows
        label[480:, 480:] = 0  # the bottom-right NAIP sub-tile (15, 15) is invalid
    else:
        label[:, :200], label[:, 200:400], label[:, 400:] = 5, 3, 7
        label[:10] = 0
    return label


def _paint(label: np.ndarray, size: int = 512) -> Image.Image:
    factor = size // label.shape[0]
    return Image.fromarray(CLASS_COLOURS[label].repeat(factor, axis=0).repeat(factor, axis=1))


def write_satlas_root(root: Path) -> Path:
    """Write the small SatlasPretrain root into `root` and return it."""
    (root / "metadata").mkdir(parents=True)
    tiles = [list(t) for t in (*LABEL_TILES, UNLABELLED_TILE)]
    for split in ("test_lowres", "test_highres"):
        (root / "metadata" / f"{split}.json").write_text(json.dumps(tiles))
    old, new = "S2A_MSIL1C_20160808T181452_N0204_R041_T12SVC_20160808T181447", "S2B_MSIL1C_20220808_late"
    (root / "metadata" / "image_times.json").write_text(
        json.dumps({old: "2016-08-08T18:14:52", new: "2022-08-08T18:14:52"})
    )
    for index, tile in enumerate(LABEL_TILES):
        label = _label(index)
        folder = root / "static" / f"{tile[0]}_{tile[1]}"
        folder.mkdir(parents=True)
        Image.fromarray(label, mode="L").save(folder / "land_cover.png")
        scenes = (old, new) if index == 0 else (old,)
        for scene in scenes:
            (root / "sentinel2" / scene / "tci").mkdir(parents=True, exist_ok=True)
            painted = _paint(label) if scene == scenes[-1] else Image.new("RGB", (512, 512), (255, 255, 255))
            painted.save(root / "sentinel2" / scene / "tci" / f"{tile[0]}_{tile[1]}.png")
        naip = root / "naip" / f"m_3609{index}_nw_14_1_20140805" / "tci"
        naip.mkdir(parents=True)
        for off_col, off_row in NAIP_OFFSETS:
            window = label[off_row * 32 : (off_row + 1) * 32, off_col * 32 : (off_col + 1) * 32]
            _paint(window).save(naip / f"{tile[0] * 16 + off_col}_{tile[1] * 16 + off_row}.png")
    return root


def present_classes() -> list[str]:
    """The classes with a labelled cell in the Sentinel-2 labels (both tiles whole)."""
    values = set(np.unique(_label(0))) | set(np.unique(_label(1)))
    return [name for i, name in enumerate(LAND_COVER_CLASSES) if i + 1 in values]


class ColourSegmenter:
    """A `Segmenter` that labels every pixel with the class whose :data:`CLASS_COLOURS` entry is nearest."""

    def segment(self, image, class_names, config=None):
        from graft_hf.evaluation.satlas import LAND_COVER_CLASSES
        from graft_hf.tasks.segmentation import SegmentationResult

        rgb = torch.as_tensor(np.array(image.convert("RGB")), dtype=torch.float32)  # (H, W, 3)
        colours = torch.as_tensor(
            CLASS_COLOURS[[LAND_COVER_CLASSES.index(n) + 1 for n in class_names]], dtype=torch.float32
        )
        scores = -torch.cdist(rgb.reshape(-1, 3), colours).T.reshape(len(class_names), *rgb.shape[:2])
        return SegmentationResult(scores, scores.argmax(0), tuple(class_names), scores)
