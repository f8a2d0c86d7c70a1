"""The run config's sections: the micro-batch size, and the data section giving each rank disjoint shards."""

from __future__ import annotations

from graft_hf.training.sections import TrainConfig


def test_micro_batch() -> None:
    config = TrainConfig()
    config.train.batch_size, config.train.grad_accum = 256, 2
    assert config.micro_batch_size(4) == 32


def test_ranks_read_disjoint_shards(train_pairs) -> None:
    from graft_hf.pairs import build_pairs_dataloader
    from graft_hf.training.config import DataSection

    data, _ = train_pairs
    section = DataSection(path=str(data), num_workers=0, interleave_shards=1, shuffle_buffer=4)
    seen = []
    for rank in (0, 1):
        loader = build_pairs_dataloader(section.loader_config(
            split="train", target="embedding", batch_size=4, train=True, seed=0, rank=rank, world_size=2,
            view_size=224, drop_last=True,
        ))  # fmt: skip
        seen.append({tile for batch in loader for tile in batch["tile_id"]})
    assert seen[0] and seen[1] and not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == 32
