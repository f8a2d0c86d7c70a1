"""Outdoor scores of ground photos: zero-shot from the CLIP teacher, or from a user's image classifier.

GRAFT pairs a ground photo with the satellite pixels under it, which only makes sense for photos of the outdoors.
:class:`ZeroShotOutdoorScorer` embeds two prompt ensembles with the teacher's text tower (each description averaged
over :data:`TEMPLATES` in embedding space by ``ensemble_text_embeddings``, the one prompt-ensembling
implementation), and scores a photo as CLIP scores a class: the softmax over all descriptions of ``100 x cosine``
(CLIP's trained logit scale is capped at 100), summed over the outdoor descriptions. The two sides have the same
number of descriptions, so a photo the teacher cannot place scores about 0.5, the documented default threshold.

:class:`ClassifierOutdoorScorer` uses any transformers image-classification model instead (for example one
fine-tuned on Places365 indoor/outdoor): the score is the summed probability of the labels named outdoor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from graft_hf.config import ConfigError
from graft_hf.modeling.modeling_graft import ensemble_text_embeddings

from .teachers import Teacher

__all__ = [
    "INDOOR_DESCRIPTIONS",
    "OUTDOOR_DESCRIPTIONS",
    "TEMPLATES",
    "ClassifierOutdoorScorer",
    "OutdoorScorer",
    "ZeroShotOutdoorScorer",
]

#: A scorer maps RGB photos to outdoor scores in [0, 1], shape ``(num_photos,)``.
OutdoorScorer = Callable[[list[Image.Image]], np.ndarray]

OUTDOOR_DESCRIPTIONS: tuple[str, ...] = (
    "an outdoor scene",
    "a landscape",
    "a street",
    "the outside of a building",
    "a park",
    "a farm field",
    "a forest",
    "a beach",
    "a mountain",
    "a river or a lake",
    "a road",
    "a town square",
)
INDOOR_DESCRIPTIONS: tuple[str, ...] = (
    "an indoor scene",
    "a room",
    "the inside of a building",
    "a kitchen",
    "a bedroom",
    "a living room",
    "an office",
    "a restaurant interior",
    "a shop interior",
    "a museum interior",
    "a classroom",
    "a bathroom",
)
TEMPLATES: tuple[str, ...] = (
    "a photo of {}.",
    "a blurry photo of {}.",
    "a bright photo of {}.",
    "a dark photo of {}.",
    "a cropped photo of {}.",
    "a photo taken from far away of {}.",
)
#: Logit scale of the zero-shot softmax (CLIP's learned temperature is clipped at 100).
LOGIT_SCALE = 100.0


class ZeroShotOutdoorScorer:
    """Outdoor probability from a CLIP-like teacher (see the module docstring).

    Args:
        teacher: A teacher with an image and a text tower (:func:`graft_hf.pairs.teachers.load_teacher`).
        outdoor: Outdoor descriptions.
        indoor: Indoor descriptions.
        templates: Prompt templates, each with one ``{}``.
    """

    def __init__(
        self,
        teacher: Teacher,
        outdoor: Sequence[str] = OUTDOOR_DESCRIPTIONS,
        indoor: Sequence[str] = INDOOR_DESCRIPTIONS,
        templates: Sequence[str] = TEMPLATES,
    ) -> None:
        if not teacher.has_image_tower:
            raise ConfigError("teacher", f"teacher {teacher.teacher_id!r} has no image tower; pass a CLIP model")
        self.teacher = teacher
        self.num_outdoor = len(outdoor)
        with torch.inference_mode():
            self.text_embeds = ensemble_text_embeddings(teacher.embed_texts, [*outdoor, *indoor], templates).cpu()

    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        image_embeds = torch.nn.functional.normalize(self.teacher.embed_images(images).float(), dim=-1)  # (b, dim)
        probs = (LOGIT_SCALE * image_embeds @ self.text_embeds.T).softmax(dim=-1)  # (b, outdoor + indoor)
        return probs[:, : self.num_outdoor].sum(dim=-1).double().numpy()


class ClassifierOutdoorScorer:
    """Outdoor probability from a transformers image-classification model directory.

    Args:
        model: Local directory (or cached Hub id) of an ``AutoModelForImageClassification`` with its image processor.
        outdoor_labels: Labels (case-insensitive) whose probabilities sum to the outdoor score.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    """

    def __init__(self, model: str, outdoor_labels: Sequence[str], device: str = "auto") -> None:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        try:
            self.model = AutoModelForImageClassification.from_pretrained(model).eval()
            self.processor = AutoImageProcessor.from_pretrained(model)
        except (OSError, ValueError) as error:
            raise ConfigError(
                "classifier",
                f"cannot load image classifier {model!r} (a local model directory with its image processor): {error}",
            ) from error
        labels = {str(name).lower(): int(index) for index, name in self.model.config.id2label.items()}
        wanted = [label.lower() for label in outdoor_labels]
        missing = [label for label in wanted if label not in labels]
        if missing or not wanted:
            raise ConfigError(
                "outdoor_labels", f"labels {missing or wanted} are not among the classifier's {sorted(labels)}"
            )
        self.indices = [labels[label] for label in wanted]
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))  # fmt: skip
        self.model.to(self.device)

    @torch.inference_mode()
    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        inputs = self.processor(images=images, return_tensors="pt").to(self.device)
        probs = self.model(**inputs).logits.float().softmax(dim=-1)  # (b, num_labels)
        return probs[:, self.indices].sum(dim=-1).double().cpu().numpy()
