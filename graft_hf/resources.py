"""Files graft-hf ships beside its code: the card templates of `hub_cards/`, installed as package data.

`hub_cards/` is a folder of the repository mapped to the package `graft_hf.hub_cards` (as `modeling/` is to
`graft_hf.modeling`, see setup.cfg), so `importlib.resources` finds the templates in a source checkout installed
with `pip install -e .` and in a wheel alike.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["HUB_CARDS_PACKAGE", "hub_card_template"]

HUB_CARDS_PACKAGE = "graft_hf.hub_cards"


def hub_card_template(name: str) -> Path:
    """Path of a card template (`model_card.md`, `pairs_dataset_card.md`).

    Read from the installed package `graft_hf.hub_cards`, or from `$GRAFT_HUB_CARDS` when that names a folder
    (to try edited templates without reinstalling).

    Raises:
        FileNotFoundError: The template is not there, naming where it was looked for.
    """
    override = os.environ.get("GRAFT_HUB_CARDS")
    if override:
        root = Path(override)
    else:
        try:
            root = Path(str(resources.files(HUB_CARDS_PACKAGE)))
        except ModuleNotFoundError as err:
            raise FileNotFoundError(
                f"card templates not found: the package {HUB_CARDS_PACKAGE} is not installed; install graft-hf "
                "(pip install -e . in a source checkout) or set GRAFT_HUB_CARDS to a folder holding the templates"
            ) from err
    path = root / name
    if not path.is_file():
        raise FileNotFoundError(f"card template {name} not found in {root}")
    return path
