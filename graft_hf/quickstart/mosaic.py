"""EuroSAT mosaics: 4 x 4 grids of real EuroSAT tiles with a per-pixel class map, as GRAFT pixel-level pairs.

The pixel-level benchmark of ``graft mosaic-benchmark`` (paper eq. 3, in the alt-text mode of ``graft quickstart``)
needs images whose land cover changes inside the image. A mosaic places ``grid x grid`` EuroSAT tiles side by side,
each downsampled from 64 px to ``tile_size`` px, so the ground truth is exact: the block at grid cell ``(r, c)``
holds tile ``tile_indices[r, c]`` and every pixel of the block has that tile's label.

Training mosaics come from the training split, test mosaics from the test split. Tiles are drawn as a sequence of
seeded random permutations of the split, so every tile appears about ``num_mosaics * grid**2 / len(split)`` times,
each time next to other random neighbours. Every placement gets its own simulated ground observations
(:class:`~graft_hf.quickstart.observations.ObservationSampler`, drawn for the tile's class) at random pixels *inside
its block*; they become the mosaic's ``photos`` in the pair shard schema, with ``row``/``col`` in mosaic pixels. The
label never enters a shard.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from graft_hf.io import atomic_write, write_json
from graft_hf.quickstart.config import EUROSAT_GSD, EUROSAT_TILE_SIZE
from graft_hf.quickstart.eurosat import EuroSATSplit
from graft_hf.quickstart.observations import ObservationSampler
from graft_hf.quickstart.shards import (
    inputs_fingerprint,
    simulated_pairs_card,
    simulated_photo,
    write_resumable_shards,
)

__all__ = ["MosaicSet", "build_mosaics", "write_mosaic_pairs"]

logger = logging.getLogger(__name__)

_MANIFEST = "mosaic_pairs.json"


@dataclass
class MosaicSet:
    """Mosaics of one EuroSAT split: which tile sits in which grid cell.

    Attributes:
        split: The split the tiles come from.
        tile_indices: Tile index (into ``split``) per cell, shape ``(num_mosaics, grid, grid)``.
        tile_size: Side of one tile in the mosaic, pixels (EuroSAT's 64 px tiles are downsampled to it).
        name: Tag used in ids (``train`` / ``test``).
    """

    split: EuroSATSplit
    tile_indices: np.ndarray
    tile_size: int
    name: str
    _tiles: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.tile_indices.shape[0])

    @property
    def grid(self) -> int:
        """Tiles per side."""
        return int(self.tile_indices.shape[1])

    @property
    def size(self) -> int:
        """Mosaic side in pixels, ``grid * tile_size``."""
        return self.grid * self.tile_size

    @property
    def gsd(self) -> float:
        """Ground sample distance of the mosaic in m/px (EuroSAT is 10 m/px at 64 px)."""
        return EUROSAT_GSD * EUROSAT_TILE_SIZE / self.tile_size

    def tile(self, index: int) -> np.ndarray:
        """Tile ``index`` of the split at mosaic resolution, uint8 ``(tile_size, tile_size, 3)`` (cached)."""
        cached = self._tiles.get(index)
        if cached is None:
            image = self.split.decode(index)
            if image.size != (self.tile_size, self.tile_size):
                # Box filtering averages whole source pixels: the honest way to downsample 64 -> 32 px.
                image = image.resize((self.tile_size, self.tile_size), resample=Image.Resampling.BOX)
            cached = np.asarray(image, dtype=np.uint8)
            self._tiles[index] = cached
        return cached

    def image(self, mosaic: int) -> np.ndarray:
        """Mosaic ``mosaic`` as uint8 ``(size, size, 3)``: cell ``(r, c)`` is exactly its tile's pixels."""
        ts = self.tile_size
        out = np.empty((self.size, self.size, 3), dtype=np.uint8)
        for r in range(self.grid):
            for c in range(self.grid):
                out[r * ts : (r + 1) * ts, c * ts : (c + 1) * ts] = self.tile(int(self.tile_indices[mosaic, r, c]))
        return out

    def cell_labels(self, mosaic: int) -> np.ndarray:
        """Label index per cell, int64 ``(grid, grid)``."""
        return self.split.labels[self.tile_indices[mosaic]].astype(np.int64)

    def label_map(self, mosaic: int) -> np.ndarray:
        """Per-pixel ground truth, int64 ``(size, size)``: every pixel of a block has its tile's label."""
        ts = self.tile_size
        return np.repeat(np.repeat(self.cell_labels(mosaic), ts, axis=0), ts, axis=1)

    def describe(self, mosaic: int) -> list[list[str]]:
        """Source file names per cell (``grid`` rows of ``grid`` names)."""
        return [[self.split.filenames[int(i)] for i in row] for row in self.tile_indices[mosaic]]


def build_mosaics(
    split: EuroSATSplit, num_mosaics: int, grid: int = 4, tile_size: int = 32, seed: int = 0, name: str = "train"
) -> MosaicSet:
    """Lay the split's tiles out in ``num_mosaics`` random ``grid x grid`` mosaics (deterministic for a seed).

    Cells are filled from consecutive seeded permutations of the split, so tiles are used evenly: no tile appears
    twice before every tile has appeared once, and a tile is never repeated inside one mosaic when the split has
    at least ``grid**2`` tiles.

    Args:
        split: EuroSAT split (train tiles for training mosaics, test tiles for test mosaics).
        num_mosaics: Mosaics to build.
        grid: Tiles per side.
        tile_size: Side of one tile in the mosaic (EuroSAT tiles are 64 px; 32 halves the resolution).
        seed: Seed of the layout.
        name: Tag used in ids.

    Returns:
        The mosaics (images are assembled on demand).
    """
    if num_mosaics < 1:
        raise ValueError(f"the number of mosaics must be >= 1, got {num_mosaics}")
    if grid < 1 or not 1 <= tile_size <= EUROSAT_TILE_SIZE:
        raise ValueError(f"need grid >= 1 and 1 <= tile_size <= {EUROSAT_TILE_SIZE}, got {grid} and {tile_size}")
    cells = grid * grid
    if len(split) < cells:
        raise ValueError(f"a {grid} x {grid} mosaic needs at least {cells} distinct tiles, the split has {len(split)}")
    rng = np.random.default_rng([seed, 7])
    needed = num_mosaics * cells
    order: list[np.ndarray] = []
    have = 0
    while have < needed:
        order.append(rng.permutation(len(split)))
        have += len(split)
    flat = np.concatenate(order)[:needed].reshape(num_mosaics, cells)
    for k in range(num_mosaics):  # a permutation boundary may repeat a tile inside one mosaic: swap it away
        row = flat[k]
        while len(np.unique(row)) < cells:
            _, first = np.unique(row, return_index=True)
            dup = np.setdiff1d(np.arange(cells), first)[0]
            row[dup] = rng.integers(len(split))
    return MosaicSet(split, flat.reshape(num_mosaics, grid, grid), tile_size, name)


def _encode_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def placement_observations(mosaics: MosaicSet, mosaic: int, sampler: ObservationSampler) -> list[dict]:
    """The simulated photos of one mosaic: for each cell, observations of its tile's class inside its block.

    Each placement ``(mosaic, r, c)`` draws its own observations (``sampler.sample`` with a unique placement
    index), so a tile seen in several mosaics is described differently each time, like revisits by other people.

    Returns:
        Photo records in the pair shard schema; ``photo_id`` is ``<mosaic id>-r<r>c<c>-obs<j>``.
    """
    grid, ts = mosaics.grid, mosaics.tile_size
    mosaic_id = f"eurosat-mosaic-{mosaics.name}-{mosaic:06d}"
    photos = []
    for r in range(grid):
        for c in range(grid):
            placement = (mosaic * grid + r) * grid + c
            label = mosaics.split.label_names[int(mosaics.cell_labels(mosaic)[r, c])]
            texts = sampler.sample(label, placement)
            rng = np.random.default_rng([sampler.seed, placement, 3])
            # Continuous positions strictly inside the block (pixel (0,0) spans [0, 1) x [0, 1)).
            offsets = rng.uniform(0.0, ts, size=(len(texts), 2))
            for j, text in enumerate(texts):
                photos.append(
                    simulated_photo(
                        f"{mosaic_id}-r{r}c{c}-obs{j:02d}", r * ts + offsets[j, 0], c * ts + offsets[j, 1], text
                    )
                )
    return photos


def _mosaic_rows(mosaics: MosaicSet, indices: np.ndarray, sampler: ObservationSampler) -> Iterator[dict]:
    for k in indices:
        k = int(k)
        yield {
            "tile_id": f"eurosat-mosaic-{mosaics.name}-{k:06d}",
            "image": {"bytes": _encode_png(mosaics.image(k)), "path": None},
            "bands": None,
            "band_names": ["red", "green", "blue"],
            "crs": None,
            "transform": None,
            "gsd": mosaics.gsd,
            "sensor": "sentinel2",
            "acquisition_date": None,
            "center_lat": None,
            "center_lon": None,
            "raster": "mosaic of " + ",".join(name for row in mosaics.describe(k) for name in row),
            "photos": placement_observations(mosaics, k, sampler),
        }


def write_mosaic_pairs(
    mosaics: MosaicSet,
    output_dir: str | os.PathLike,
    sampler: ObservationSampler,
    num_shards: int = 8,
    progress: bool = True,
) -> dict:
    """Write the mosaics with their per-tile observations as pair shards (``data/train-*.parquet``).

    Same schema and resume rules as :func:`graft_hf.quickstart.eurosat.write_eurosat_pairs`: shards are written
    atomically and recorded in a manifest; a rerun with the same inputs keeps finished shards, other inputs in the
    same folder are refused. The layout (tile files per cell) is saved beside the shards in ``mosaics.json``.

    Returns:
        A summary: mosaics, size, observations, uses per tile, shards, fingerprint.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    out = Path(output_dir)
    fingerprint = inputs_fingerprint(
        sampler,
        [mosaics.name, mosaics.tile_size, num_shards, mosaics.tile_indices.tolist()],
        [mosaics.split.filenames, mosaics.split.labels.tolist()],
    )
    write_resumable_shards(
        out,
        np.array_split(np.arange(len(mosaics)), num_shards),  # the layout is already random
        lambda part: _mosaic_rows(mosaics, part, sampler),
        fingerprint,
        what="mosaic pairs",
        row_group_size=64,
        unit="mosaic",
        progress=progress,
        manifest=_MANIFEST,
    )
    cells = mosaics.grid**2
    counts = [len(sampler.sample("Forest", p)) for p in range(len(mosaics) * cells)]  # counts do not depend on label
    uses = np.bincount(mosaics.tile_indices.reshape(-1), minlength=len(mosaics.split))
    summary = {
        "mosaics": len(mosaics),
        "grid": mosaics.grid,
        "tile_size": mosaics.tile_size,
        "mosaic_size": mosaics.size,
        "gsd": mosaics.gsd,
        "source_tiles": len(mosaics.split),
        "uses_per_tile": {"min": int(uses.min()), "mean": round(float(uses.mean()), 2), "max": int(uses.max())},
        "observations": int(sum(counts)),
        "observations_per_mosaic": round(sum(counts) / len(mosaics), 2),
        "sampler": asdict(sampler),
        "shards": num_shards,
        "fingerprint": fingerprint,
    }
    layout = {"tile_size": mosaics.tile_size, "layout": mosaics.tile_indices.tolist()}
    write_json(out / "mosaics.json", layout | {"filenames": mosaics.split.filenames})
    atomic_write(out / "README.md", _card(summary))
    write_json(out / "build_report.json", summary)
    return summary


def _card(summary: dict) -> str:
    description = (
        f"Written by `graft mosaic-benchmark`: {summary['grid']} x {summary['grid']} mosaics of EuroSAT training "
        f"tiles (each downsampled to {summary['tile_size']} px, {summary['gsd']:g} m/px), with simulated ground "
        "observations of every tile placed at random pixels inside that tile's block, in the GRAFT pair shard schema. "
        "The layout is in `mosaics.json`; no label is stored.\n\n"
    )
    title = "EuroSAT mosaics as GRAFT pixel-level pairs (simulated ground observations)"
    return simulated_pairs_card(title, description.strip(), summary)
