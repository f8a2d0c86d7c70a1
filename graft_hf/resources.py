"""Files graft-hf ships beside its code (card templates)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def hub_card_template(name: str) -> Path:
    """Path of a card template in `hub_cards/`.

    Looked up in `$GRAFT_HUB_CARDS`, else the source checkout's `hub_cards/`, else the data files a non-editable
    install puts under `<prefix>/share/graft-hf/hub_cards`.
    """
    override = os.environ.get("GRAFT_HUB_CARDS")
    if override:
        roots = [Path(override)]
    else:
        roots = [
            Path(__file__).resolve().parents[1] / "hub_cards",
            Path(sys.prefix) / "share" / "graft-hf" / "hub_cards",
        ]
    for root in roots:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"card template {name} not found in {', '.join(str(r) for r in roots)}; run from a graft-hf source checkout "
        f"or set GRAFT_HUB_CARDS to the folder holding {name}"
    )
