"""graft_hf.workers: worker processes die with a SIGKILLed parent (process pools, DataLoader workers, and
`graft pairs build --workers 2` on real NAIP rasters); without the helper they outlive it (the control).
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers.data import REPO_ROOT, SHARED_DATA
from tests.helpers.make_photos import make_photo_table

_POOL_PARENT = """
import concurrent.futures, multiprocessing, os, sys, time
from pathlib import Path

from graft_hf.workers import exit_with_parent


def arm(mode, markers):
    if mode != "none":
        exit_with_parent(portable=mode == "portable")
    (Path(markers) / str(os.getpid())).touch()  # armed (or, for "none", started)


if __name__ == "__main__":
    mode, method, markers = sys.argv[1:]
    context = multiprocessing.get_context(method)
    pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=context, initializer=arm, initargs=(mode, markers))
    futures = [pool.submit(time.sleep, 600) for _ in range(2)]
    while len(os.listdir(markers)) < 2:
        time.sleep(0.01)
    print("ready", flush=True)
    time.sleep(600)
"""

_LOADER_PARENT = """
import os, time, torch
from graft_hf.workers import exit_with_parent

class Forever(torch.utils.data.IterableDataset):
    def __iter__(self):
        time.sleep(600)  # a worker busy inside a fetch: torch's own between-fetch watchdog never runs
        yield 0

loader = torch.utils.data.DataLoader(Forever(), num_workers=2, worker_init_fn=exit_with_parent)
iterator = iter(loader)
time.sleep(1.0)
print("ready", flush=True)
next(iterator)
"""


def _start(code: str | Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    source = [str(code)] if isinstance(code, Path) else ["-c", code]
    return subprocess.Popen([sys.executable, *source, *args], stdout=subprocess.PIPE, text=True, env=env)


def _kill_parent(parent: subprocess.Popen, expected_children: int) -> list[psutil.Process]:
    """Wait until the parent has its workers, SIGKILL it, return its child processes."""
    assert parent.stdout.readline().strip() == "ready"
    children = psutil.Process(parent.pid).children(recursive=True)
    assert len(children) >= expected_children, children
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    return children


def _pool_workers(tmp_path: Path, mode: str, method: str) -> list[psutil.Process]:
    """The two workers of a process pool whose parent was SIGKILLed once they were armed (``mode``)."""
    script, markers = tmp_path / "pool_parent.py", tmp_path / "markers"
    script.write_text(_POOL_PARENT)
    markers.mkdir()
    children = _kill_parent(_start(script, mode, method, str(markers)), 2)
    workers = {int(name) for name in os.listdir(markers)}
    return [c for c in children if c.pid in workers]  # not spawn's resource tracker


def _alive_after(children: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    """Workers still alive ``seconds`` after their parent's death (zombies of the dead parent count as gone)."""
    deadline = time.monotonic() + seconds
    alive = children
    while time.monotonic() < deadline:
        alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return []
        time.sleep(0.05)
    return alive


def _cleanup(children: list[psutil.Process]) -> None:
    for child in children:
        if child.is_running():
            child.kill()


@pytest.mark.parametrize(
    ("mode", "method"),
    [("linux", "fork"), ("portable", "fork"), pytest.param("linux", "spawn", marks=pytest.mark.slow)],
)  # spawn: each worker imports graft_hf (torch) before it is armed
def test_pool_workers_exit_when_the_parent_is_killed(tmp_path: Path, mode: str, method: str) -> None:
    if mode == "linux" and not sys.platform.startswith("linux"):
        pytest.skip("prctl(PR_SET_PDEATHSIG) is Linux only")
    workers = _pool_workers(tmp_path, mode, method)
    try:
        assert len(workers) == 2
        assert not _alive_after(workers, 1.0 if mode == "linux" else 3.0)
    finally:
        _cleanup(workers)


def test_without_the_helper_pool_workers_outlive_the_parent(tmp_path: Path) -> None:
    """The control: the failure the helper fixes is real, and the test above would see it."""
    workers = _pool_workers(tmp_path, "none", "fork")
    try:
        assert len(_alive_after(workers, 2.0)) == 2
    finally:
        _cleanup(workers)


def test_dataloader_workers_busy_in_a_fetch_exit_with_the_parent() -> None:
    parent = _start(_LOADER_PARENT)
    children = _kill_parent(parent, 2)
    try:
        assert not _alive_after(children, 1.0)
    finally:
        _cleanup(children)


def test_the_pairs_loader_arms_its_workers(tmp_path: Path) -> None:
    from graft_hf.pairs.loader import build_pairs_dataloader
    from graft_hf.training.config import DataSection
    from graft_hf.workers import exit_with_parent
    from tests.helpers.train_data import write_pairs, write_teacher

    data = write_pairs(tmp_path, write_teacher(tmp_path))
    loader = build_pairs_dataloader(DataSection(path=str(data), num_workers=2).loader_config(
        split="train", target="embedding", batch_size=4, train=True, seed=0, rank=0, world_size=1, view_size=224,
    ))  # fmt: skip
    assert loader.num_workers == 2 and loader.worker_init_fn is exit_with_parent


def test_sigkilled_pair_build_leaves_no_worker_behind(tmp_path: Path) -> None:
    naip = SHARED_DATA / "naip-nd"
    if not naip.is_dir():
        pytest.skip(f"real NAIP rasters not found at {naip} (../shared/data/naip-nd)")
    make_photo_table(tmp_path / "photos.csv", "EPSG:26914", (486500, 5206200, 489900, 5208700), 400, seed=4,
                     with_images=False)  # fmt: skip
    command = [sys.executable, "-m", "graft_hf_cli", "pairs", "build", "--photos", str(tmp_path / "photos.csv"),
               "-o", str(tmp_path / "out"), "--workers", "2", "--tiles-per-shard", "2", "--no-progress"]  # fmt: skip
    for raster in sorted(glob.glob(str(naip / "*.tif"))):
        command += ["--raster", raster]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    parent = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    children: list[psutil.Process] = []
    while len(children) < 2:
        assert parent.poll() is None, "the build ended before its workers started"
        assert time.monotonic() < deadline, "the build never started its workers"
        children = psutil.Process(parent.pid).children(recursive=True)
        time.sleep(0.05)
    time.sleep(0.5)  # inside their first shard
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    try:
        assert not _alive_after(children, 1.0), "pool workers outlived the SIGKILLed build"
    finally:
        _cleanup(children)
