"""Question-answering test helpers: a detector that returns drawn masks, so the image API can be checked exactly."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import torch

from graft_hf.tasks.detection import DetectionResult, PreparedImage, instances_from_score_map, pixel_area_m2
from graft_hf.tasks.vqa_api import ImageScene


class DrawnDetector:
    """Finds each concept where `masks[concept]` is true (one instance per connected component); `delay_s` per call.

    Attributes:
        calls: The concepts asked for, in order (to check caching).
    """

    def __init__(self, masks: dict[str, np.ndarray], gsd: float | None = 1.0, delay_s: float = 0.0) -> None:
        self.masks = masks
        self.model = SimpleNamespace(config=SimpleNamespace(gsd=gsd))
        self.delay_s = delay_s
        self.calls: list[str] = []
        self.size = next(iter(masks.values())).shape if masks else (32, 32)

    def prepare(self, image):  # noqa: ANN001, ANN201 - the ObjectDetector interface
        rgb = np.zeros((*self.size, 3), dtype=np.uint8)
        return PreparedImage(torch.zeros(1, 3, 8, 8), rgb, torch.zeros(1, 1, 4))

    def detect(self, image, query, config=None, gsd=None, original_size=None) -> DetectionResult:  # noqa: ANN001
        self.calls.append(query)
        time.sleep(self.delay_s)
        mask = self.masks.get(query, np.zeros(self.size, dtype=bool))
        score_map = torch.from_numpy(mask.astype(np.float32))
        area = pixel_area_m2(gsd, self.size, original_size) if gsd is not None else None
        return DetectionResult(query, instances_from_score_map(score_map, 0.5, query, area), score_map, area)


def drawn_scene(masks: dict[str, np.ndarray], gsd: float | None = 1.0, **kwargs) -> ImageScene:
    """An `ImageScene` over a `DrawnDetector`."""
    detector = DrawnDetector(masks, gsd, kwargs.pop("delay_s", 0.0))
    return ImageScene(detector, detector.prepare(None), **kwargs)  # type: ignore[arg-type]


def box_mask(size: tuple[int, int], *boxes: tuple[int, int, int, int]) -> np.ndarray:
    """bool mask of `size` with each `(x0, y0, x1, y1)` box (rows down, exclusive) set."""
    mask = np.zeros(size, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask
