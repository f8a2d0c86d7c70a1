"""Prompt templates and class-name lists for zero-shot evaluation.

A template is a string with one ``{}`` placeholder for the class name. Template *sets* are ensembled: the
classifier weight of a class is the mean of its L2-normalised prompt embeddings, re-normalised (CLIP, Radford
et al. 2021, Sec. 3.1.4).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BIGEARTHNET19_CLASSNAMES",
    "CLASSNAME_SETS",
    "CLIP_EUROSAT_TEMPLATES",
    "EUROSAT_CLASSNAMES",
    "EUROSAT_LABELS",
    "GROUND_TEMPLATES",
    "SATELLITE_TEMPLATES",
    "SIMPLE_TEMPLATES",
    "TEMPLATE_SETS",
    "format_prompts",
    "get_classnames",
    "get_templates",
]

#: Overhead-imagery prompts: the usual satellite ensemble (CLIP's EuroSAT/RESISC45 prompts and variants).
SATELLITE_TEMPLATES: tuple[str, ...] = (
    "a satellite image of {}.",
    "a satellite photo of {}.",
    "a centered satellite photo of {}.",
    "a centered satellite photo of a {}.",
    "a centered satellite photo of the {}.",
    "an aerial photo of {}.",
    "an aerial image of {}.",
    "an overhead view of {}.",
    "a top-down satellite view of {}.",
    "a remote sensing image of {}.",
    "satellite imagery of {}.",
    "a satellite photo of a {} area.",
)

#: Ground-level prompts. GRAFT aligns satellite images with CLIP embeddings of *ground* photos, so prompts
#: describing what one would photograph on the ground are a natural second ensemble to compare.
GROUND_TEMPLATES: tuple[str, ...] = (
    "a photo of {}.",
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo taken in a {} area.",
    "a picture of {}.",
)

#: The single plain prompt, for ablations against ensembling.
SIMPLE_TEMPLATES: tuple[str, ...] = ("a photo of {}.",)

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "satellite": SATELLITE_TEMPLATES,
    "ground": GROUND_TEMPLATES,
    "simple": SIMPLE_TEMPLATES,
    "satellite+ground": SATELLITE_TEMPLATES + GROUND_TEMPLATES,
}

#: The prompts CLIP's authors used for EuroSAT (Radford et al. 2021, `prompts.md`).
CLIP_EUROSAT_TEMPLATES: tuple[str, ...] = (
    "a centered satellite photo of {}.",
    "a centered satellite photo of a {}.",
    "a centered satellite photo of the {}.",
)

#: EuroSAT's label names, in label order (the dataset's ClassLabel).
EUROSAT_LABELS: tuple[str, ...] = (
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
)

#: EuroSAT class names in label order (AnnualCrop ... SeaLake), phrased as in CLIP's zero-shot evaluation.
EUROSAT_CLASSNAMES: tuple[str, ...] = (
    "annual crop land",
    "forest",
    "brushland or shrubland",
    "highway or road",
    "industrial buildings or commercial buildings",
    "pasture land",
    "permanent crop land",
    "residential buildings or homes or apartments",
    "river",
    "lake or sea",
)

#: BigEarthNet 19-class nomenclature (Sumbul et al. 2021), in its standard order.
BIGEARTHNET19_CLASSNAMES: tuple[str, ...] = (
    "urban fabric",
    "industrial or commercial units",
    "arable land",
    "permanent crops",
    "pastures",
    "complex cultivation patterns",
    "land principally occupied by agriculture, with significant areas of natural vegetation",
    "agro-forestry areas",
    "broad-leaved forest",
    "coniferous forest",
    "mixed forest",
    "natural grassland and sparsely vegetated areas",
    "moors, heathland and sclerophyllous vegetation",
    "transitional woodland, shrub",
    "beaches, dunes, sands",
    "inland wetlands",
    "coastal wetlands",
    "inland waters",
    "marine waters",
)

CLASSNAME_SETS: dict[str, tuple[str, ...]] = {
    "eurosat": EUROSAT_CLASSNAMES,
    "bigearthnet19": BIGEARTHNET19_CLASSNAMES,
}


def get_templates(templates: str | Sequence[str]) -> tuple[str, ...]:
    """Resolves a template-set name (see `TEMPLATE_SETS`) or validates an explicit list of templates.

    Args:
        templates: A name such as `"satellite"`, or templates each containing one `{}`.

    Returns:
        The templates as a tuple.
    """
    if isinstance(templates, str):
        if templates in TEMPLATE_SETS:
            return TEMPLATE_SETS[templates]
        if "{}" not in templates:
            raise ValueError(f"unknown template set {templates!r}; choose one of {sorted(TEMPLATE_SETS)}")
        templates = (templates,)
    out = tuple(templates)
    if not out:
        raise ValueError("templates is empty; pass at least one template such as 'a satellite photo of {}.'")
    for t in out:
        if not isinstance(t, str) or t.count("{}") != 1:
            raise ValueError(f"each template must be a string with exactly one '{{}}' placeholder, got {t!r}")
    return out


def get_classnames(classnames: str | Sequence[str]) -> tuple[str, ...]:
    """Resolves a class-name set name (see `CLASSNAME_SETS`) or validates an explicit list.

    Args:
        classnames: A name such as `"eurosat"`, or a list of class names.

    Returns:
        The class names as a tuple.
    """
    if isinstance(classnames, str):
        if classnames not in CLASSNAME_SETS:
            raise ValueError(f"unknown class-name set {classnames!r}; choose one of {sorted(CLASSNAME_SETS)}")
        return CLASSNAME_SETS[classnames]
    out = tuple(classnames)
    if not out:
        raise ValueError("classnames is empty; pass at least one class name")
    if len(set(out)) != len(out):
        raise ValueError(f"classnames contain duplicates: {sorted({c for c in out if out.count(c) > 1})}")
    return out


def format_prompts(classnames: Sequence[str], templates: Sequence[str]) -> list[str]:
    """All prompts, class-major: `[t0(c0), t1(c0), ..., t0(c1), ...]` (length `num_classes * num_templates`)."""
    templates = get_templates(templates)
    return [t.replace("{}", c) for c in classnames for t in templates]
