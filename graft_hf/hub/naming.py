"""Hub repository names of GRAFT models: `graft-<sensor>-<arch><patch>`, e.g. `graft-naip-vitb16`, `graft-s2-vitb32`.

The name is derived from the configuration (sensor and vision tower) so that a model pushed as `graft-s2-vitb32`
really is a Sentinel-2 ViT-B/32; `validate_model_repo_id` rejects names that contradict the config. The sensor part
is the registry's short form (`s2` for Sentinel-2, as in `graft_hf.hub.registry`); the long form
(`graft-sentinel2-vitb32`) is accepted too. An optional lowercase suffix is allowed for variants
(`graft-naip-vitb16-pixel`, `-v2`).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["ARCH_NAMES", "model_repo_name", "split_repo_id", "validate_model_repo_id", "validate_repo_id"]

# (hidden_size, num_hidden_layers) of the OpenAI CLIP vision towers -> the short name used in repo names.
ARCH_NAMES: dict[tuple[int, int], str] = {(768, 12): "vitb", (1024, 24): "vitl", (1280, 32): "vith"}
# Hub rules for the name part of a repo id (huggingface_hub.utils.validate_repo_id, plus the 96 character cap).
_HUB_NAME = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_SUFFIX = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Short sensor parts of repo names (the registry's: graft-s2-vitb16); other sensors use their own name.
_SHORT_SENSORS = {"sentinel2": "s2", "sentinel2-l1c": "s2-l1c"}


def _sensor_slug(sensor: str, short: bool = True) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", sensor.lower()).strip("-")
    if not slug:
        raise ValueError(f"sensor name {sensor!r} has no letters or digits to put in a repo name; set config.sensor")
    return _SHORT_SENSORS.get(slug, slug) if short else slug


def _arch_slug(vision_config: Any) -> str:
    arch = ARCH_NAMES.get((vision_config.hidden_size, vision_config.num_hidden_layers))
    if arch is None:  # non-standard towers (tiny test models, custom widths) say their shape
        arch = f"vit-w{vision_config.hidden_size}-d{vision_config.num_hidden_layers}-p"
    return f"{arch}{vision_config.patch_size}"


def model_repo_name(config: Any, suffix: str | None = None) -> str:
    """The repo name of a GRAFT model: `graft-<sensor>-<arch><patch size>[-<suffix>]`.

    Args:
        config: A `GraftConfig` (reads `sensor` and `vision_config`).
        suffix: Optional variant label, lowercase letters, digits and single hyphens (e.g. `pixel`).

    Returns:
        e.g. `graft-naip-vitb16`, `graft-s2-vitb32`, `graft-naip-vitl14-pixel`; models with a non-CLIP tower shape
        get `vit-w<width>-d<depth>-p<patch>` in place of `vitb16`.
    """
    name = f"graft-{_sensor_slug(config.sensor)}-{_arch_slug(config.vision_config)}"
    if suffix:
        if not _SUFFIX.fullmatch(suffix):
            raise ValueError(
                f"repo name suffix {suffix!r} must be lowercase letters and digits separated by single hyphens, "
                "e.g. 'pixel' or 'v2'"
            )
        name = f"{name}-{suffix}"
    return name


def split_repo_id(repo_id: str) -> tuple[str | None, str]:
    """Split `namespace/name` (or a bare `name`) into its parts."""
    if repo_id.count("/") > 1:
        raise ValueError(f"repo id {repo_id!r} has more than one '/'; use 'namespace/name' or 'name'")
    namespace, _, name = repo_id.rpartition("/")
    return (namespace or None), name


def validate_repo_id(repo_id: str) -> str:
    """Check a repo id against the Hub's naming rules; return it unchanged.

    Raises:
        ValueError: naming the offending part and the rule.
    """
    namespace, name = split_repo_id(repo_id)
    for label, part in (("namespace", namespace), ("name", name)):
        if part is not None and not _HUB_NAME.fullmatch(part):
            raise ValueError(
                f"invalid repo {label} {part!r} in {repo_id!r}: use letters, digits, '-', '_' and '.', at most 96 "
                "characters, starting and ending with a letter or digit, without '--' or '..'"
            )
    return repo_id


def _names_variant(name: str, base: str) -> bool:
    """`name` is `base` or `base-<suffix>`."""
    rest = name[len(base) :]
    return name.startswith(base) and (not rest or (rest.startswith("-") and bool(_SUFFIX.fullmatch(rest[1:]))))


def validate_model_repo_id(repo_id: str, config: Any) -> str:
    """Check that a model repo id follows the Hub rules and names this config's sensor and architecture.

    The name must be `model_repo_name(config)` (or its long-sensor form, `graft-sentinel2-...`) optionally followed
    by `-<suffix>`.

    Args:
        repo_id: `namespace/name` or `name`.
        config: The `GraftConfig` of the model being pushed.

    Returns:
        The repo id unchanged.

    Raises:
        ValueError: with the expected name when the name contradicts the config.
    """
    validate_repo_id(repo_id)
    _, name = split_repo_id(repo_id)
    expected = model_repo_name(config)
    long_form = f"graft-{_sensor_slug(config.sensor, short=False)}-{_arch_slug(config.vision_config)}"
    if not any(_names_variant(name, base) for base in (expected, long_form)):
        raise ValueError(
            f"model repo name {name!r} does not match the model (sensor {config.sensor!r}, patch size "
            f"{config.vision_config.patch_size}): expected {expected!r} or '{expected}-<suffix>'; "
            "to push under another name anyway pass allow_any_name=True"
        )
    return repo_id
