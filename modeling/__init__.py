"""GRAFT model files: configuration, model, image processor and processor.

Installed as ``graft_hf.modeling`` and uploaded next to every saved model as Hub remote code, so these files
import torch and transformers only.
"""

from .configuration_graft import SENSOR_PRESETS, SENSORS, GraftConfig, SensorSpec, get_sensor
from .image_processing_graft import GraftImageProcessor
from .modeling_graft import PUSH_HANDLER_KWARGS, GraftModel, GraftOutput, GraftPatchHead, GraftPreTrainedModel
from .processing_graft import GraftProcessor
from .text_tower_graft import TEXT_POOLINGS, GraftTextOutput, GraftTextTower, ensemble_text_embeddings

__all__ = [
    "PUSH_HANDLER_KWARGS",
    "SENSORS",
    "SENSOR_PRESETS",
    "TEXT_POOLINGS",
    "GraftConfig",
    "GraftImageProcessor",
    "GraftModel",
    "GraftOutput",
    "GraftPatchHead",
    "GraftPreTrainedModel",
    "GraftProcessor",
    "GraftTextOutput",
    "GraftTextTower",
    "SensorSpec",
    "ensemble_text_embeddings",
    "get_sensor",
]
