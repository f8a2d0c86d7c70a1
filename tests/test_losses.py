"""Tests for graft_hf.losses: float64 references, CLIP reduction, distributed equivalence, errors, bf16.

Distributed convention under test: each rank returns ``world_size * (its share of the global-batch loss)``, so the
mean over ranks of the losses equals the single-process loss on the whole batch, and the mean over ranks of the
gradients (what DDP does) equals the single-process gradient.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graft_hf.losses import GraftImageLoss, GraftLossOutput, GraftPixelLoss, patch_embeds_at_pixels

TAU = 0.1
IMAGE_SIZE = (28, 21)  # non-square on purpose: grid (4, 3) -> patches of 7x7 pixels
GRID = (4, 3)


# ----------------------------------------------------------------------------------------------- references
def _reference_lookup(patches: torch.Tensor, row: float, col: float) -> torch.Tensor:
    """Patch under pixel (row, col), written the obvious way: patch size in pixels, floor, clamp."""
    grid_h, grid_w = patches.shape[:2]
    patch_h, patch_w = IMAGE_SIZE[0] / grid_h, IMAGE_SIZE[1] / grid_w
    r = min(max(math.floor(row / patch_h), 0), grid_h - 1)
    c = min(max(math.floor(col / patch_w), 0), grid_w - 1)
    return patches[r, c]


def _valid_ground(ground: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    return [ground[a, b] for a in range(ground.shape[0]) for b in range(ground.shape[1]) if mask[a, b]]


def _nll(anchor: torch.Tensor, positive: torch.Tensor, bank: list[torch.Tensor], tau: float) -> torch.Tensor:
    """-log( exp(anchor.positive / tau) / sum_g exp(anchor.g / tau) ) with unit vectors, float64."""
    unit = lambda v: v.double() / v.double().norm()  # noqa: E731
    denominator = sum(torch.exp(unit(anchor) @ unit(g) / tau) for g in bank)
    return -torch.log(torch.exp(unit(anchor) @ unit(positive) / tau) / denominator)


def reference_image_loss(sat: torch.Tensor, ground: torch.Tensor, mask: torch.Tensor, tau: float) -> torch.Tensor:
    """Paper eq. 2 with explicit loops over images and photos."""
    bank = _valid_ground(ground, mask)
    per_image = []
    for i in range(sat.shape[0]):
        terms = [_nll(sat[i], ground[i, j], bank, tau) for j in range(ground.shape[1]) if mask[i, j]]
        if terms:
            per_image.append(sum(terms) / len(terms))
    return sum(per_image) / len(per_image)


def reference_pixel_loss(patches, ground, mask, coords, in_view, tau: float) -> torch.Tensor:
    """Paper eq. 3 with explicit loops, including the patch lookup."""
    bank = _valid_ground(ground, mask)
    per_image = []
    for i in range(patches.shape[0]):
        terms = [
            _nll(_reference_lookup(patches[i], float(coords[i, j, 0]), float(coords[i, j, 1])), ground[i, j], bank, tau)
            for j in range(ground.shape[1])
            if mask[i, j] and in_view[i, j]
        ]
        if terms:
            per_image.append(sum(terms) / len(terms))
    return sum(per_image) / len(per_image)


# ------------------------------------------------------------------------------------------------- fixtures
@dataclass
class Batch:
    sat: torch.Tensor  # (batch, dim)
    patches: torch.Tensor  # (batch, grid_h, grid_w, dim)
    ground: torch.Tensor  # (batch, num_photos, dim)
    mask: torch.Tensor  # (batch, num_photos)
    coords: torch.Tensor  # (batch, num_photos, 2)
    in_view: torch.Tensor  # (batch, num_photos)


def random_batch(num_photos: list[int], dim: int = 6, seed: int = 0, pad_to: int | None = None) -> Batch:
    """Ragged batch: image i has num_photos[i] real photos; padded slots hold garbage that must be ignored."""
    gen = torch.Generator().manual_seed(seed)
    batch, width = len(num_photos), max(pad_to or 0, max(num_photos), 1)
    mask = torch.arange(width)[None, :] < torch.tensor(num_photos)[:, None]
    coords = torch.rand(batch, width, 2, generator=gen) * torch.tensor(IMAGE_SIZE, dtype=torch.float32)
    coords[0, 0] = torch.tensor([float(IMAGE_SIZE[0]), 0.0])  # bottom edge: clamped to the last patch row
    return Batch(
        sat=torch.randn(batch, dim, generator=gen) * 3,
        patches=torch.randn(batch, *GRID, dim, generator=gen),
        ground=torch.randn(batch, width, dim, generator=gen) * 2,
        mask=mask,
        coords=coords,
        in_view=torch.rand(batch, width, generator=gen) > 0.25,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------ single-process values
def test_image_loss_matches_float64_reference() -> None:
    b = random_batch([3, 0, 1, 5, 2])
    b.mask[3, 1] = False  # a hole in the middle, not only trailing padding
    loss = GraftImageLoss(temperature=TAU)(b.sat, b.ground, b.mask)
    assert loss.shape == () and loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), reference_image_loss(b.sat, b.ground, b.mask, TAU), rtol=1e-5, atol=1e-5)


def test_pixel_loss_matches_float64_reference() -> None:
    b = random_batch([3, 0, 1, 5, 2], seed=1)
    b.in_view[3] = False  # an image whose photos all left the view: contributes nothing, its photos stay negatives
    loss = GraftPixelLoss(temperature=TAU, image_size=IMAGE_SIZE)(b.patches, b.ground, b.mask, b.coords, b.in_view)
    expected = reference_pixel_loss(b.patches, b.ground, b.mask, b.coords, b.in_view, TAU)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-5)


def test_patch_lookup_matches_loop_and_clamps() -> None:
    b = random_batch([4, 4], seed=2)
    b.coords[1, 0] = torch.tensor([-3.0, 100.0])  # outside the image: clamped into the grid
    b.coords[1, 1] = torch.tensor([float("nan"), 5.0])  # padding garbage must not crash the lookup
    picked = patch_embeds_at_pixels(b.patches, b.coords, IMAGE_SIZE)
    assert picked.shape == (2, 4, b.patches.shape[-1])
    for i in range(2):
        for j in range(4):
            row, col = (0.0 if math.isnan(v) else v for v in b.coords[i, j].tolist())
            assert torch.equal(picked[i, j], _reference_lookup(b.patches[i], row, col))
    assert torch.equal(picked[1, 0], b.patches[1, 0, GRID[1] - 1])


def test_image_loss_reduces_to_clip_with_one_photo_per_image() -> None:
    gen = torch.Generator().manual_seed(3)
    image, text = torch.randn(7, 5, generator=gen), torch.randn(7, 5, generator=gen)
    loss = GraftImageLoss()(image, text[:, None, :], torch.ones(7, 1, dtype=torch.bool))
    image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    torch.testing.assert_close(loss, F.cross_entropy(image @ text.T / 0.07, torch.arange(7)))


def test_default_temperature_and_buffer() -> None:
    loss_fn = GraftPixelLoss()
    assert loss_fn.temperature == 0.07
    torch.testing.assert_close(loss_fn.logit_scale, torch.tensor(1 / 0.07))
    assert "logit_scale" not in loss_fn.state_dict()


def test_compute_returns_accuracy_and_counts() -> None:
    b = random_batch([2, 0, 3], seed=4)
    out = GraftImageLoss(temperature=TAU).compute(b.ground[:, 0] * 5.0, b.ground, b.mask)
    assert isinstance(out, GraftLossOutput)
    # the satellite embedding equals its first photo: top-1 is one of its own photos for both images with photos
    assert out.accuracy.item() == 1.0 and out.num_anchors.item() == 2 and out.num_ground == 5
    pix = GraftPixelLoss(temperature=TAU, image_size=IMAGE_SIZE).compute(b.patches, b.ground, b.mask, b.coords)
    assert pix.num_anchors.item() == 5 and pix.num_images.item() == 2 and 0.0 <= pix.accuracy.item() <= 1.0
    assert set(pix.logs("pixel_")) == {"pixel_loss", "pixel_accuracy", "pixel_num_anchors", "pixel_num_ground"}


def test_bf16_inputs_close_to_fp32() -> None:
    b = random_batch([3, 1, 4, 2], dim=16, seed=5)
    image_fn, pixel_fn = GraftImageLoss(), GraftPixelLoss(image_size=IMAGE_SIZE)
    ref_image = image_fn(b.sat, b.ground, b.mask)
    ref_pixel = pixel_fn(b.patches, b.ground, b.mask, b.coords, b.in_view)
    sat = b.sat.bfloat16().requires_grad_()
    image = image_fn(sat, b.ground.bfloat16(), b.mask)
    pixel = pixel_fn(b.patches.bfloat16(), b.ground.bfloat16(), b.mask, b.coords, b.in_view)
    assert image.dtype == torch.float32 and torch.isfinite(image) and torch.isfinite(pixel)
    torch.testing.assert_close(image, ref_image, rtol=0.03, atol=0.03)
    torch.testing.assert_close(pixel, ref_pixel, rtol=0.03, atol=0.03)
    image.backward()
    assert sat.grad.dtype == torch.bfloat16 and torch.isfinite(sat.grad.float()).all()


def test_large_logits_are_stable() -> None:
    b = random_batch([2, 2], seed=6)
    loss = GraftImageLoss(temperature=1e-4)(b.sat, b.ground, b.mask)  # logits up to 1e4: naive exp overflows
    assert torch.isfinite(loss)


# ------------------------------------------------------------------------------------------------- errors
def test_error_messages() -> None:
    b = random_batch([2, 1], dim=4)
    image_fn, pixel_fn = GraftImageLoss(), GraftPixelLoss(image_size=IMAGE_SIZE)
    with pytest.raises(ValueError, match="empty batch"):
        image_fn(torch.zeros(0, 4), torch.zeros(0, 3, 4), torch.zeros(0, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="empty batch"):
        pixel_fn(
            torch.zeros(0, *GRID, 4), torch.zeros(0, 3, 4), torch.zeros(0, 3, dtype=torch.bool), torch.zeros(0, 3, 2)
        )
    with pytest.raises(ValueError, match=r"ground_embeds must have shape \(batch=2, num_photos, dim=4\)"):
        image_fn(b.sat, b.ground[..., :3], b.mask)
    with pytest.raises(ValueError, match=r"ground_mask must have shape \(batch, num_photos\) = \(2, 2\)"):
        image_fn(b.sat, b.ground, b.mask[:, :1])
    with pytest.raises(ValueError, match=r"image_embeds must have shape \(batch, dim\)"):
        image_fn(b.sat[0], b.ground, b.mask)
    with pytest.raises(TypeError, match="ground_mask must be a bool tensor"):
        image_fn(b.sat, b.ground, b.mask.long())
    with pytest.raises(ValueError, match=r"patch_embeds must have shape \(batch, grid_h, grid_w, dim\)"):
        pixel_fn(b.patches.flatten(1, 2), b.ground, b.mask, b.coords)
    with pytest.raises(ValueError, match=r"ground_pixel_coords must have shape \(batch, num_photos, 2\)"):
        pixel_fn(b.patches, b.ground, b.mask, b.coords[..., :1])
    with pytest.raises(ValueError, match="ground_in_view must be a bool tensor"):
        pixel_fn(b.patches, b.ground, b.mask, b.coords, b.in_view.float())
    no_photos = torch.zeros_like(b.mask)
    with pytest.raises(ValueError, match="ground_mask is all False"):
        image_fn(b.sat, b.ground, no_photos)
    with pytest.raises(ValueError, match="ground_mask & ground_in_view is all False"):
        pixel_fn(b.patches, b.ground, b.mask, b.coords, torch.zeros_like(b.mask))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        GraftImageLoss(temperature=0.0)
    with pytest.raises(RuntimeError, match="torch.distributed is not initialised"):
        GraftImageLoss(rank=1, world_size=2)(b.sat, b.ground, b.mask)


# ---------------------------------------------------------------------------------------- distributed data
def split_batches() -> tuple[list[Batch], Batch]:
    """Two ranks with different batch sizes and padded widths, plus the same data as one padded batch."""
    ranks = [random_batch([3, 0, 4], seed=10, pad_to=4), random_batch([1, 2], seed=11)]
    ranks[1].mask[0, 0] = False  # rank 1: a hole, so its padded width (2) != its real photo counts
    ranks[1].mask[0, 1] = True
    width = max(r.mask.shape[1] for r in ranks)

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, 0) * (t.ndim - 2) + (0, width - t.shape[1]))

    full = Batch(
        sat=torch.cat([r.sat for r in ranks]),
        patches=torch.cat([r.patches for r in ranks]),
        ground=torch.cat([pad(r.ground) for r in ranks]),
        mask=torch.cat([pad(r.mask) for r in ranks]),
        coords=torch.cat([pad(r.coords) for r in ranks]),
        in_view=torch.cat([pad(r.in_view) for r in ranks]),
    )
    return ranks, full


class Towers(nn.Module):
    """Linear student (satellite and patch embeddings) and linear teacher (ground embeddings)."""

    def __init__(self, dim: int = 6) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)  # not the global RNG: ranks may run as threads
        self.student = nn.Linear(dim, dim)
        self.teacher = nn.Linear(dim, dim)
        with torch.no_grad():
            for param in self.parameters():
                param.copy_(torch.randn(param.shape, generator=gen) / math.sqrt(dim))

    def loss(self, b: Batch, loss_fn: GraftImageLoss | GraftPixelLoss) -> torch.Tensor:
        ground = self.teacher(b.ground)
        if isinstance(loss_fn, GraftImageLoss):
            return loss_fn(self.student(b.sat), ground, b.mask)
        return loss_fn(self.student(b.patches), ground, b.mask, b.coords, b.in_view)


def run_rank(b: Batch, rank: int, world_size: int, gather_with_grad: bool, gather_fn=None) -> dict[str, torch.Tensor]:
    """Loss values and gradients (student + teacher) for each loss, flattened into one dict."""
    common = {"gather_with_grad": gather_with_grad, "rank": rank, "world_size": world_size, "gather_fn": gather_fn}
    loss_fns = {
        "image": GraftImageLoss(temperature=TAU, **common),
        "pixel": GraftPixelLoss(temperature=TAU, image_size=IMAGE_SIZE, **common),
    }
    out = {}
    for name, loss_fn in loss_fns.items():
        towers = Towers()
        loss = towers.loss(b, loss_fn)
        loss.backward()
        out[f"{name}.loss"] = loss.detach()
        for param_name, param in towers.named_parameters():
            out[f"{name}.{param_name}"] = param.grad.clone()
    return out


def assert_ranks_match_single_process(per_rank: list[dict[str, torch.Tensor]], check_teacher: bool) -> None:
    _, full = split_batches()
    expected = run_rank(full, 0, 1, gather_with_grad=False)
    towers = Towers()
    with torch.no_grad():
        sat, patches, ground = towers.student(full.sat), towers.student(full.patches), towers.teacher(full.ground)
        ref_image = reference_image_loss(sat, ground, full.mask, TAU)
        ref_pixel = reference_pixel_loss(patches, ground, full.mask, full.coords, full.in_view, TAU)
    torch.testing.assert_close(expected["image.loss"].double(), ref_image, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(expected["pixel.loss"].double(), ref_pixel, rtol=1e-5, atol=1e-5)
    for key, value in expected.items():
        if "teacher" in key and not check_teacher:
            continue
        mean_over_ranks = sum(r[key] for r in per_rank) / len(per_rank)  # DDP averages gradients
        torch.testing.assert_close(mean_over_ranks, value, rtol=1e-5, atol=1e-6, msg=f"mismatch for {key}")


# --------------------------------------------------------------------------------- fake world (one process)
class ThreadWorld:
    """A world of ranks run as threads; gather_fn(rank) is an all-gather that returns other ranks' tensors detached."""

    def __init__(self, world_size: int) -> None:
        self.barrier = threading.Barrier(world_size, timeout=30)
        self.slots: list[torch.Tensor | None] = [None] * world_size

    def gather_fn(self, rank: int):
        def gather(tensor: torch.Tensor) -> list[torch.Tensor]:
            self.slots[rank] = tensor
            self.barrier.wait()
            out = [t if r == rank else t.detach().clone() for r, t in enumerate(self.slots)]
            self.barrier.wait()  # nobody overwrites a slot before everyone has read it
            return out

        return gather


def test_fake_world_of_two_matches_single_process() -> None:
    ranks, _ = split_batches()
    world = ThreadWorld(2)
    results: list[dict | BaseException | None] = [None, None]

    def worker(rank: int) -> None:
        try:
            results[rank] = run_rank(ranks[rank], rank, 2, gather_with_grad=False, gather_fn=world.gather_fn(rank))
        except BaseException as error:  # re-raised in the main thread below
            world.barrier.abort()
            results[rank] = error

    threads = [threading.Thread(target=worker, args=(rank,)) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    # without gather_with_grad only local ground embeddings get gradients: compare the student only
    assert_ranks_match_single_process(results, check_teacher=False)


def test_fake_world_rank_without_photos_still_backpropagates() -> None:
    b = random_batch([2, 1], seed=12)
    other = random_batch([0, 0, 0], seed=13)  # rank 1 has images but no photos this step
    world = ThreadWorld(2)
    sat = [b.sat.clone().requires_grad_(), other.sat.clone().requires_grad_()]
    losses: list[torch.Tensor | None] = [None, None]

    def worker(rank: int, batch: Batch) -> None:
        loss_fn = GraftImageLoss(rank=rank, world_size=2, gather_fn=world.gather_fn(rank))
        losses[rank] = loss_fn(sat[rank], batch.ground, batch.mask)
        losses[rank].backward()

    threads = [threading.Thread(target=worker, args=(r, x)) for r, x in enumerate((b, other))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert losses[1].item() == 0.0 and torch.equal(sat[1].grad, torch.zeros_like(sat[1]))
    torch.testing.assert_close((losses[0] + losses[1]) / 2, GraftImageLoss()(b.sat, b.ground, b.mask))


def test_gather_fn_must_return_world_size_tensors() -> None:
    b = random_batch([1, 1])
    loss_fn = GraftImageLoss(rank=0, world_size=2, gather_fn=lambda t: [t])
    with pytest.raises(RuntimeError, match="gather_fn must return world_size=2 tensors"):
        loss_fn(b.sat, b.ground, b.mask)


# ------------------------------------------------------------------------------ two real processes (gloo)
def _distributed_worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        ranks, _ = split_batches()
        for gather_with_grad in (False, True):
            result = run_rank(ranks[rank], rank, 2, gather_with_grad=gather_with_grad)
            torch.save(result, f"{out_dir}/rank{rank}_grad{int(gather_with_grad)}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_single_process(tmp_path) -> None:
    import torch.multiprocessing as mp

    # fork, not spawn: a spawned child re-imports graft_hf (transformers, ~7 s each on busy cores)
    context = mp.start_processes(
        _distributed_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=False, start_method="fork"
    )
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the two gloo worker processes did not finish within 120 s")
    for gather_with_grad in (False, True):
        per_rank = [torch.load(tmp_path / f"rank{r}_grad{int(gather_with_grad)}.pt") for r in range(2)]
        # with gather_with_grad the teacher (ground side) gradients must match too
        assert_ranks_match_single_process(per_rank, check_teacher=gather_with_grad)
