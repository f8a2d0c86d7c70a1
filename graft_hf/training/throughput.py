"""Model FLOPs and utilisation (MFU) of a GRAFT training step, for the training logs and the benchmarks.

FLOPs are counted analytically for the student's ViT vision tower, per image, a multiply-add counting 2:

    forward = 2 x (matmul parameters per layer x layers) x tokens      (q, k, v, out, fc1, fc2)
            + 4 x layers x tokens^2 x width                             (q k^T and attention x v)
            + 2 x patches x (3 x patch^2) x width                       (patch embedding)
            + 2 x width x projection x tokens                           (projection or patch head, upper bound)

and a training step costs 3 forward passes per sample (backward = 2 x forward), as in the PaLM MFU definition;
activation recomputation (gradient checkpointing) is not counted, so MFU stays a property of the model and the
hardware. ViT-B/16 at 224 px gives about 105 GFLOP per sample.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["PEAK_BF16_TFLOPS", "peak_bf16_flops", "training_flops_per_sample", "vit_forward_flops"]

#: Dense bf16 peak FLOP/s (no sparsity) of common accelerators from their data sheets, by a substring of
#: ``torch.cuda.get_device_name()`` (first match wins, so more specific names come first).
PEAK_BF16_TFLOPS: dict[str, float] = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 NVL": 835.0,
    "H100": 756.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
    "RTX 4090": 165.0,
}


def vit_forward_flops(vision_config: Any, projection_dim: int) -> float:
    """Forward FLOPs of a CLIP-style ViT vision tower for one image.

    Args:
        vision_config: A ``CLIPVisionConfig``-like object (``hidden_size``, ``intermediate_size``,
            ``num_hidden_layers``, ``image_size``, ``patch_size``).
        projection_dim: Output embedding size of the projection (or patch head).

    Returns:
        FLOPs (multiply-add = 2).
    """
    width, mlp = vision_config.hidden_size, vision_config.intermediate_size
    layers, patch = vision_config.num_hidden_layers, vision_config.patch_size
    patches = (vision_config.image_size // patch) ** 2
    tokens = patches + 1  # the class token
    matmul_params = layers * (4 * width * width + 2 * width * mlp)
    attention = 4 * layers * tokens * tokens * width
    patch_embed = 2 * patches * 3 * patch * patch * width
    head = 2 * width * projection_dim * tokens
    return float(2 * matmul_params * tokens + attention + patch_embed + head)


def training_flops_per_sample(model: torch.nn.Module) -> float:
    """Model FLOPs of one training sample (forward + backward) of a ``GraftModel`` student: 3 x forward.

    Args:
        model: The student (a ``GraftModel``, or a wrapper exposing its ``config``).
    """
    config = model.config
    return 3.0 * vit_forward_flops(config.vision_config, config.projection_dim)


def peak_bf16_flops(device: torch.device, override_tflops: float | None = None) -> float | None:
    """Peak dense bf16 FLOP/s of ``device`` (``override_tflops`` if given), or ``None`` when unknown or not CUDA.

    Args:
        device: The training device.
        override_tflops: A measured or known peak in TFLOP/s (for example ``train.peak_tflops``).
    """
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None
