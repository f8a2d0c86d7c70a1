"""Card templates of graft-hf, installed as the package ``graft_hf.hub_cards`` (read with ``importlib.resources``).

- ``model_card.md``: the model card (Jinja, rendered by ``graft_hf.hub.cards.render_model_card``).
- ``pairs_dataset_card.md``: the pairs dataset card (``string.Template``, rendered by ``graft_hf.pairs.card``).
"""
