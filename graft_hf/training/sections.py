"""The typed sections of one GRAFT training run: :class:`TrainConfig` and its ``data``, ``teacher``, ``student``,
``loss``, ``optim`` and ``train`` sections.

Each class is a :func:`graft_hf.config.config_dataclass`: field types are checked by huggingface_hub's strict
dataclasses, value rules are ``validate_*`` methods run on construction, and errors are
:class:`graft_hf.config.ConfigError` naming the dotted key (``train.batch_size: must be >= 1, got 0``). The rules
that depend on the launch (the number of processes, a non-empty ``data.path``) are :meth:`TrainConfig.check_run`,
called by the training loop before any compute. Loading from YAML, presets and overrides is
:mod:`graft_hf.training.config`.
"""

import dataclasses
from dataclasses import field
from typing import Any, Literal

from graft_hf.config import ConfigError, config_dataclass, config_to_dict, require
from graft_hf.pairs.loader import LoaderConfig, PairsStreamOptions

__all__ = [
    "DataSection",
    "LoraSection",
    "LossSection",
    "OptimSection",
    "StudentSection",
    "TeacherSection",
    "TrainConfig",
    "TrainSection",
]


@config_dataclass
class DataSection(PairsStreamOptions):
    """Where the pair shards are and how they are streamed.

    The streaming options are the loader's own (:class:`graft_hf.pairs.loader.PairsStreamOptions`: ``name``,
    ``split`` (the training split), ``num_workers``, ``shuffle_buffer``, ``interleave_shards``, ``max_photos``,
    ``rotate``, ``translate``, ``right_angles``), so each is written once; this section adds the following.

    Attributes:
        path: Local folder of pair shards (``graft pairs build``) or a Hub dataset repo id.
        val_split: Held-out split for the validation pass (``None``: no validation).
        num_tiles: Tiles per epoch, for the LR schedule when the shards cannot be counted (remote data).
    """

    path: str = ""
    val_split: str | None = None
    num_tiles: int | None = None

    def loader_config(self, *, split: str, **options: Any) -> LoaderConfig:
        """The :class:`LoaderConfig` that streams ``split`` with this section's options.

        Args:
            split: Split to read (``self.split`` or ``self.val_split``).
            **options: The per-loader fields (``train``, ``target``, ``batch_size``, ``seed``, ``rank``, ...).
        """
        return LoaderConfig(data=self.path, **{**self.stream_options(), "split": split}, **options)


@config_dataclass
class TeacherSection:
    """The frozen teacher that provides the targets.

    Attributes:
        name_or_path: CLIP checkpoint (local directory, or a Hub id when online). Also initialises the student
            when ``student.init == "from_clip"``. May be ``None`` for a scratch student on precomputed targets.
        targets: ``precomputed`` (photo embeddings stored in the shards), ``on_the_fly`` (the teacher encodes the
            photos in the forward pass) or ``auto`` (precomputed when the shards carry them).
        dtype: Precision of the on-the-fly teacher (``float16``, ``bfloat16``, ``float32``).
    """

    name_or_path: str | None = "openai/clip-vit-base-patch16"
    targets: Literal["auto", "precomputed", "on_the_fly"] = "auto"
    dtype: Literal["float16", "bfloat16", "float32"] = "float16"


@config_dataclass
class LoraSection:
    """Low-rank adapters (peft) on the student's vision tower instead of full fine-tuning.

    Attributes:
        enabled: Train LoRA adapters only (plus ``modules_to_save``).
        r: Adapter rank.
        alpha: LoRA scaling numerator (``lora_alpha``).
        dropout: Dropout on the adapter input.
        target_modules: Regular expression of the adapted linear layers (peft ``target_modules``).
        modules_to_save: Modules trained fully besides the adapters (e.g. ``["patch_head"]``).
        merge: Merge the adapters into the exported model (the adapters are saved separately either way).
    """

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str = (
        r"vision_model\.encoder\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.(fc1|fc2))"
    )
    modules_to_save: list[str] = field(default_factory=list)
    merge: bool = True

    def validate_rank(self) -> None:
        if self.enabled:
            require(self.r >= 1, "r", f"must be >= 1, got {self.r}")
            require(self.alpha > 0, "alpha", f"must be > 0, got {self.alpha}")


_ARCHITECTURE_KEYS = ("vision_config", "text_config", "projection_dim")


@config_dataclass
class StudentSection:
    """The trained satellite model.

    Attributes:
        init: ``from_clip`` (copy the teacher CLIP, as in the paper) or ``scratch`` (random weights from a
            ``GraftConfig``; its ``projection_dim`` must equal the target dimension).
        config: ``GraftConfig`` keyword overrides (``scratch``: the whole config, e.g. ``vision_config``,
            ``projection_dim``; ``from_clip``: metadata such as ``gsd`` or ``band_names``).
        sensor: Sensor preset of the student (``naip``, ``sentinel2``, ...).
        text_tower: Folder of the text encoder whose embeddings the targets are (e.g. all-MiniLM-L6-v2 for
            ``loss.target=text``): the saved model carries it as its frozen text tower, with its tokenizer in the
            processor (``graft_hf.text_towers``). ``None`` keeps the student's own text tower (``from_clip``: the
            teacher CLIP's).
        gradient_checkpointing: Recompute activations in the backward pass to save memory.
        lora: LoRA options.
    """

    init: Literal["from_clip", "scratch"] = "from_clip"
    config: dict[str, Any] = field(default_factory=dict)
    sensor: str = "naip"
    text_tower: str | None = None
    gradient_checkpointing: bool = False
    lora: LoraSection = field(default_factory=LoraSection)

    def validate_architecture(self) -> None:
        changed = sorted(set(_ARCHITECTURE_KEYS) & set(self.config))
        require(
            self.init != "from_clip" or not changed,
            "config",
            f"may not change the architecture with student.init=from_clip (it is the teacher's): drop {changed} "
            "or use student.init=scratch",
        )


@config_dataclass
class LossSection:
    """What the student is aligned to.

    Attributes:
        target: ``image`` (teacher image embeddings of the photos, the paper), ``text`` (the teacher's text
            embedding of each photo's text: the alt-text ablation) or ``image+text`` (image targets plus an
            auxiliary loss on text targets weighted by ``text_weight``).
        text_weight: Weight of the auxiliary text loss for ``image+text``.
        temperature: Softmax temperature of the contrastive loss.
        gather_negatives: Use the ground embeddings of every process as negatives (global batch).
    """

    target: Literal["image", "text", "image+text"] = "image"
    text_weight: float = 0.5
    temperature: float = 0.07
    gather_negatives: bool = True

    def validate_weights(self) -> None:
        require(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        require(
            self.target != "image+text" or self.text_weight > 0,
            "text_weight",
            f"loss.target='image+text' needs loss.text_weight > 0, got {self.text_weight} (or use loss.target=image)",
        )


@config_dataclass
class OptimSection:
    """AdamW with linear warm-up then cosine decay (``transformers.get_cosine_with_min_lr_schedule_with_warmup``).

    Attributes:
        lr: Peak learning rate (paper: 1e-5 image level, 5e-5 pixel level).
        weight_decay: Decoupled weight decay (paper: 1e-2); not applied to biases, norms and embeddings.
        betas: Adam betas.
        eps: Adam epsilon.
        warmup_steps: Warm-up optimizer steps; ``None`` uses ``warmup_ratio`` of the total.
        warmup_ratio: Fraction of the total steps used for warm-up when ``warmup_steps`` is ``None``.
        min_lr_ratio: Final LR as a fraction of the peak at the end of the cosine.
        max_grad_norm: Gradient clipping norm (``None`` or 0: no clipping).
    """

    lr: float = 1e-5
    weight_decay: float = 1e-2
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_steps: int | None = None
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.0
    max_grad_norm: float | None = 1.0

    def validate_ranges(self) -> None:
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "betas",
            f"must be two numbers in [0, 1), got {self.betas}",
        )
        require(0 <= self.warmup_ratio < 1, "warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        require(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}")


@config_dataclass
class TrainSection:
    """Length, batching, precision, checkpoints, logging and validation of the run.

    Attributes:
        batch_size: Global batch per optimizer step (all processes and accumulation steps together).
        grad_accum: Gradient accumulation steps.
        epochs: Passes over the data (ignored when ``max_steps`` is set).
        max_steps: Optimizer steps to train for; overrides ``epochs`` (streaming data has no length).
        mixed_precision: ``no``, ``bf16`` or ``fp16`` (Accelerate autocast; one setting per process, see
            :func:`graft_hf.training.loop.train`).
        save_every: Checkpoint every N optimizer steps (0: only the final model).
        keep_checkpoints: Checkpoints kept on disk (older ones are deleted).
        eval_every: Validation pass every N optimizer steps (0: none during training).
        eval_batches: Most validation batches per pass.
        log_every: Log losses, LR and throughput every N optimizer steps.
        tracker: Accelerate tracker (``tensorboard``, ``wandb``, ...) or ``none``.
        progress_bar: Show a tqdm bar on the main process.
        cpu: Force CPU training even when an accelerator is present.
        compile: ``torch.compile`` the student (``nn.Module.compile``: in place, so checkpoints and the exported
            model keep the eager parameter names and load into an uncompiled student).
        peak_tflops: Peak bf16 TFLOP/s of one device, for the MFU in the logs (``None``: from the device name for
            known GPUs; no MFU on the CPU). Model FLOPs per sample are logged on every device.
    """

    batch_size: int = 256
    grad_accum: int = 1
    epochs: int = 10
    max_steps: int | None = None
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    save_every: int = 1000
    keep_checkpoints: int = 2
    eval_every: int = 1000
    eval_batches: int = 50
    log_every: int = 10
    tracker: str = "tensorboard"
    progress_bar: bool = True
    cpu: bool = False
    compile: bool = False
    peak_tflops: float | None = None

    def validate_counts(self) -> None:
        for key in ("batch_size", "grad_accum", "log_every", "keep_checkpoints"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        for key in ("save_every", "eval_every"):
            require(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")
        if self.peak_tflops is not None:
            require(self.peak_tflops > 0, "peak_tflops", f"must be > 0 TFLOP/s or null, got {self.peak_tflops}")

    def validate_length(self) -> None:
        if self.max_steps is None:
            require(self.epochs >= 1, "epochs", f"must be >= 1 (or set train.max_steps), got {self.epochs}")
        else:
            require(self.max_steps >= 1, "max_steps", f"must be >= 1 or null, got {self.max_steps}")


@config_dataclass
class TrainConfig:
    """One GRAFT training run.

    Attributes:
        task: ``image`` (image-level model, paper eq. 2) or ``pixel`` (pixel-level model, eq. 3).
        output_dir: Run directory: ``checkpoints/``, ``logs/`` and the final model in ``model/``.
        seed: Seed of the model initialisation, the data order and the augmentation.
        data: Where the pair shards are and how they are streamed.
        teacher: The frozen teacher.
        student: The trained model.
        loss: The alignment targets and loss.
        optim: Optimizer and LR schedule.
        train: Length, batching, precision, checkpoints, logging and validation.
    """

    task: Literal["image", "pixel"] = "image"
    output_dir: str = "runs/graft"
    seed: int = 0
    data: DataSection = field(default_factory=DataSection)
    teacher: TeacherSection = field(default_factory=TeacherSection)
    student: StudentSection = field(default_factory=StudentSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)

    def validate_text_targets(self) -> None:
        require(
            self.loss.target == "image" or self.teacher.targets != "on_the_fly",
            "loss.target",
            f"loss.target={self.loss.target!r} needs precomputed photo text embeddings in the shards "
            "(`text_embedding`); the loader does not stream photo texts for an on-the-fly teacher. Set "
            "teacher.targets=precomputed (after embedding the photo texts: graft_hf.pairs.EmbedConfig(text=True)) "
            "or loss.target=image",
        )

    def validate_teacher(self) -> None:
        require(
            self.student.init != "from_clip" or bool(self.teacher.name_or_path),
            "teacher.name_or_path",
            "student.init=from_clip copies the teacher CLIP: set teacher.name_or_path to a local CLIP directory"
            " (or use student.init=scratch with student.config)",
        )
        require(
            self.teacher.targets != "on_the_fly" or bool(self.teacher.name_or_path),
            "teacher.name_or_path",
            "teacher.targets=on_the_fly needs teacher.name_or_path (a local CLIP directory)",
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON serialisable)."""
        return config_to_dict(self)

    def micro_batch_size(self, num_processes: int) -> int:
        """Per-process batch of one forward pass: ``batch_size / (num_processes * grad_accum)``.

        Raises:
            ConfigError: ``train.batch_size`` is not a multiple of ``num_processes x train.grad_accum``.
        """
        per_step = num_processes * self.train.grad_accum
        if self.train.batch_size % per_step:
            raise ConfigError(
                "train.batch_size",
                f"{self.train.batch_size} is not divisible by num_processes x train.grad_accum = "
                f"{num_processes} x {self.train.grad_accum} = {per_step}; pick a batch size that is a multiple of "
                f"{per_step} (e.g. {max(1, self.train.batch_size // per_step) * per_step})",
            )
        return self.train.batch_size // per_step

    def check_run(self, num_processes: int = 1) -> None:
        """Check the config for a launch on ``num_processes`` processes, before any compute.

        Re-runs every ``validate_*`` rule (sections may have been changed since construction), then the launch
        rules: ``data.path`` is set and ``train.batch_size`` divides among processes and accumulation steps.

        Raises:
            ConfigError: naming the dotted key to change.
        """
        _revalidate(self)
        require(bool(self.data.path), "data.path", "is empty: pass the pair shards folder or Hub repo id")
        self.micro_batch_size(num_processes)


def _revalidate(config: Any, prefix: str = "") -> None:
    """Run the ``validate_*`` rules of ``config`` and of its nested sections, naming keys from the root."""
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if dataclasses.is_dataclass(value):
            _revalidate(value, f"{prefix}{item.name}.")
    try:
        config.validate()
    except ConfigError as error:
        raise error.with_prefix(prefix) from None
