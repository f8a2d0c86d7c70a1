"""The image API that question-answering programs call (GRAFT Sec. 3.3: ViperGPT's `ImagePatch`, GRAFT replacing GLIP).

A program written in ViperGPT's form receives the image, wraps it with `ImagePatch(image)` and asks it questions:
`find("building")` returns the regions GRAFT's zero-shot detector finds (each an `ImagePatch` with a mask, a box, a
score and an area in square metres, sharpened by SAM when the detector has one and the config asks for it),
`exists`, `count` and `area` summarise them, `crop` restricts the search to part of the image, and `left_of`,
`right_of`, `above`, `below`, `near`, `overlaps` and `distance` relate two regions. Coordinates follow ViperGPT:
pixels with the origin at the bottom-left corner, so `upper > lower` and "above" means a larger `vertical_center`
(north on a north-up image).

Detections are computed once per concept per image (:class:`ImageScene` caches them) and every region is the
detections intersected with the patch it was found in, so `image_patch.crop(...).find("road")` costs no new model
call. Only the names in :attr:`ImagePatch.METHODS` and :attr:`ImagePatch.ATTRIBUTES` and the functions in
:data:`API_FUNCTIONS` are reachable from a program (see :mod:`graft_hf.tasks.vqa_program`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from graft_hf.extras import require
from graft_hf.tasks.detection import DetectionConfig, DetectionResult, ObjectDetector, PreparedImage, pixel_spacing_m

logger = logging.getLogger(__name__)

__all__ = ["API_FUNCTIONS", "Area", "CannotAnswerError", "ImagePatch", "ImageScene", "bool_to_yesno", "distance"]

_CONCEPT = re.compile(r"^[a-z][a-z0-9 '\-]{0,63}$", re.IGNORECASE)


class CannotAnswerError(ValueError):
    """The question cannot be answered (no program, a refused program, or missing information); the message says
    why."""


class Area(float):
    """A ground area in square metres (answers print it as `"1234 m2"`); arithmetic on it gives plain floats."""

    def __repr__(self) -> str:
        return f"Area({float(self)!r} m2)"


@dataclass
class ImageScene:
    """One image prepared for a program: detections per concept on demand (cached) and the ground geometry.

    Attributes:
        detector: The zero-shot detector (GRAFT patch scores, optional SAM refinement).
        image: The image, read and encoded once.
        config: Detection options shared by every `find`.
        gsd: Metres per pixel of the raster the image comes from; `None` uses the model's training GSD.
        original_size: `(height, width)` of that raster when the image is a resized copy of it.
        near_distance_m: The largest gap between two regions that `near` accepts, in metres.
        max_concepts: How many different concepts one program may look for.
        detections: Detections by concept, shared by every program run on this scene.
        requested: The concepts the current program asked for, in order (cleared before each program).
    """

    detector: ObjectDetector
    image: PreparedImage
    config: DetectionConfig = field(default_factory=DetectionConfig)
    gsd: float | tuple[float, float] | None = None
    original_size: tuple[int, int] | None = None
    near_distance_m: float = 30.0
    max_concepts: int = 32
    detections: dict[str, DetectionResult] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.gsd is None:
            self.gsd = getattr(self.detector.model.config, "gsd", None)
        self.spacing = None if self.gsd is None else pixel_spacing_m(self.gsd, self.size, self.original_size)

    @property
    def size(self) -> tuple[int, int]:
        """`(height, width)` of the image in pixels."""
        return self.image.size

    def detect(self, concept: str) -> DetectionResult:
        """Every instance of `concept` in the whole image (computed once per concept)."""
        if not isinstance(concept, str) or not _CONCEPT.match(" ".join(concept.split())):
            raise CannotAnswerError(
                f"find() takes a concept name of 1-64 letters, digits, spaces, hyphens or apostrophes, got {concept!r}"
            )
        concept = " ".join(concept.split())
        if concept not in self.requested:
            if len(self.requested) >= self.max_concepts:
                raise CannotAnswerError(f"the program looks for more than {self.max_concepts} different concepts")
            self.requested.append(concept)
        if concept not in self.detections:
            self.detections[concept] = self.detector.detect(
                self.image, concept, self.config, gsd=self.gsd, original_size=self.original_size
            )
        return self.detections[concept]

    def requested_detections(self) -> dict[str, DetectionResult]:
        """The detections of the concepts the current program asked for."""
        return {concept: self.detections[concept] for concept in self.requested if concept in self.detections}

    def require_spacing(self, what: str) -> tuple[float, float]:
        """`(metres per row, metres per column)`, or :class:`CannotAnswerError` naming what needed it."""
        if self.spacing is None:
            raise CannotAnswerError(f"{what} needs the image's ground sample distance: pass gsd=... (m/px)")
        return self.spacing


def _box_of(mask: torch.Tensor) -> tuple[int, int, int, int]:
    rows, cols = torch.nonzero(mask, as_tuple=True)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


class ImagePatch:
    """A region of the image: the whole image, a crop of it, or one object `find` returned.

    Attributes (ViperGPT's, in pixels with the origin at the bottom-left corner):
        left, right: Columns of the region's box (`right` exclusive).
        lower, upper: Rows of the box counted from the bottom (`upper` exclusive).
        width, height: Box size.
        horizontal_center, vertical_center: Box centre; larger `vertical_center` is higher up (north).
        label: The concept a found region was found as (`None` for the image and crops).
        score: The detector's highest score inside a found region (`None` for the image and crops).
    """

    #: Methods and attributes a program may use; nothing else of this class is reachable from a program.
    METHODS = frozenset(
        {"find", "exists", "count", "area", "coverage", "crop", "left_of", "right_of", "above", "below", "near",
         "overlaps", "distance"}
    )  # fmt: skip
    ATTRIBUTES = frozenset(
        {"left", "right", "lower", "upper", "width", "height", "horizontal_center", "vertical_center", "label", "score"}
    )

    def __init__(
        self,
        scene: ImageScene,
        box: tuple[int, int, int, int] | None = None,
        mask: torch.Tensor | None = None,
        label: str | None = None,
        score: float | None = None,
    ) -> None:
        if not isinstance(scene, ImageScene):
            raise CannotAnswerError("ImagePatch() takes the image the program was given: ImagePatch(image)")
        height, width = scene.size
        self._scene = scene
        self._box = box if box is not None else (0, 0, width, height)  # (x0, y0, x1, y1), rows down, exclusive
        self._mask = mask  # bool (height, width); None: the whole box
        self.label = label
        self.score = score

    # ---------------------------------------------------------------------------------------------- geometry
    @property
    def left(self) -> int:
        return self._box[0]

    @property
    def right(self) -> int:
        return self._box[2]

    @property
    def lower(self) -> int:
        return self._scene.size[0] - self._box[3]

    @property
    def upper(self) -> int:
        return self._scene.size[0] - self._box[1]

    @property
    def width(self) -> int:
        return self._box[2] - self._box[0]

    @property
    def height(self) -> int:
        return self._box[3] - self._box[1]

    @property
    def horizontal_center(self) -> float:
        return (self.left + self.right) / 2

    @property
    def vertical_center(self) -> float:
        return (self.lower + self.upper) / 2

    def region(self) -> torch.Tensor:
        """bool `(height, width)` mask of this patch at the image's resolution."""
        if self._mask is None:
            height, width = self._scene.size
            x0, y0, x1, y1 = self._box
            self._mask = torch.zeros(height, width, dtype=torch.bool)
            self._mask[y0:y1, x0:x1] = True
        return self._mask

    def __repr__(self) -> str:
        what = f"{self.label!r} " if self.label else ""
        return f"ImagePatch({what}left={self.left}, lower={self.lower}, right={self.right}, upper={self.upper})"

    # ---------------------------------------------------------------------------------------------- the API
    def find(self, object_name: str) -> list[ImagePatch]:
        """The regions of `object_name` inside this patch, highest score first (GRAFT detections, SAM-refined when
        configured)."""
        result = self._scene.detect(object_name)
        region = self.region()
        found = []
        for instance in result.instances:
            mask = instance.mask & region
            if bool(mask.any()):
                found.append(ImagePatch(self._scene, _box_of(mask), mask, result.query, instance.score))
        return found

    def exists(self, object_name: str) -> bool:
        """Whether `find(object_name)` finds anything."""
        return len(self.find(object_name)) > 0

    def count(self, object_name: str) -> int:
        """How many regions `find(object_name)` finds."""
        return len(self.find(object_name))

    def area(self, object_name: str | None = None) -> Area:
        """Ground area in square metres covered by `object_name` inside this patch, or of the patch itself."""
        dy, dx = self._scene.require_spacing("area")
        if object_name is None:
            pixels = int(self.region().sum())
        else:
            pixels = int(self._union(object_name).sum())
        return Area(pixels * dy * dx)

    def coverage(self, object_name: str) -> float:
        """Fraction (0 to 1) of this patch that `object_name` covers."""
        return float(self._union(object_name).sum()) / max(1, int(self.region().sum()))

    def crop(self, left: float, lower: float, right: float, upper: float) -> ImagePatch:
        """The part of this patch inside the box `left, lower, right, upper` (image coordinates, as the attributes)."""
        height, width = self._scene.size
        x0, x1 = sorted((int(round(left)), int(round(right))))
        y0, y1 = sorted((height - int(round(upper)), height - int(round(lower))))
        x0, x1, y0, y1 = max(0, x0), min(width, x1), max(0, y0), min(height, y1)
        box_mask = torch.zeros(height, width, dtype=torch.bool)
        box_mask[y0:y1, x0:x1] = True
        mask = box_mask & self.region()
        if not bool(mask.any()):
            raise CannotAnswerError(f"crop({left}, {lower}, {right}, {upper}) holds none of {self!r}")
        return ImagePatch(self._scene, _box_of(mask), mask)

    def left_of(self, other: ImagePatch) -> bool:
        """Whether this region's centre is left of (west of) `other`'s."""
        return self.horizontal_center < _patch(other, "left_of").horizontal_center

    def right_of(self, other: ImagePatch) -> bool:
        """Whether this region's centre is right of (east of) `other`'s."""
        return self.horizontal_center > _patch(other, "right_of").horizontal_center

    def above(self, other: ImagePatch) -> bool:
        """Whether this region's centre is above (north of) `other`'s."""
        return self.vertical_center > _patch(other, "above").vertical_center

    def below(self, other: ImagePatch) -> bool:
        """Whether this region's centre is below (south of) `other`'s."""
        return self.vertical_center < _patch(other, "below").vertical_center

    def overlaps(self, other: ImagePatch) -> bool:
        """Whether the two regions share a pixel."""
        return bool((self.region() & _patch(other, "overlaps").region()).any())

    def distance(self, other: ImagePatch) -> float:
        """Metres between the closest pixels of the two regions (0 when they touch or overlap)."""
        return distance(self, other)

    def near(self, other: ImagePatch, max_distance_m: float | None = None) -> bool:
        """Whether the regions are at most `max_distance_m` apart (default: the scene's `near_distance_m`)."""
        limit = self._scene.near_distance_m if max_distance_m is None else float(max_distance_m)
        return distance(self, other) <= limit

    def _union(self, object_name: str) -> torch.Tensor:
        union = torch.zeros(self._scene.size, dtype=torch.bool)
        for patch in self.find(object_name):
            union |= patch.region()
        return union


def _patch(value: Any, method: str) -> ImagePatch:
    if not isinstance(value, ImagePatch):
        raise CannotAnswerError(f"{method}() relates two regions; got {type(value).__name__} instead of an ImagePatch")
    return value


def distance(patch_a: ImagePatch, patch_b: ImagePatch) -> float:
    """Metres between the closest pixels of two regions (0 when they touch or overlap), as ViperGPT's `distance`."""
    a, b = _patch(patch_a, "distance"), _patch(patch_b, "distance")
    dy, dx = a._scene.require_spacing("distance")
    region_a, region_b = a.region(), b.region()
    if bool((region_a & region_b).any()):
        return 0.0
    ndimage = require("scipy.ndimage", "tasks", "distances between regions", package="scipy")
    to_b = ndimage.distance_transform_edt(~region_b.numpy(), sampling=(dy, dx))  # metres to the nearest b pixel
    # Pixel centres one pixel apart are dy (or dx) metres apart; regions that touch diagonally are sqrt(dy2+dx2).
    gap = float(np.min(to_b[region_a.numpy()]))
    return max(0.0, gap - min(dy, dx))


def bool_to_yesno(value: bool) -> str:
    """`"yes"` or `"no"` (ViperGPT's helper)."""
    return "yes" if bool(value) else "no"


def _image_patch(image: Any) -> ImagePatch:
    return ImagePatch(image)


#: Functions a program may call besides the methods of `ImagePatch` (and the interpreter's number built-ins).
API_FUNCTIONS = {"ImagePatch": _image_patch, "distance": distance, "bool_to_yesno": bool_to_yesno}
