"""graft_hf.hub.files: what of a folder may be published (regular files, no links followed) and which files are
pickles (by suffix, pickle header, or a torch-style zip holding one).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from graft_hf.hub.files import folder_files, pickle_files


def test_links_and_special_files_are_skipped_with_their_reason(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_text("api key")
    (outside / "dir" / "inner.txt").write_text("x")
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "notes.md").write_text("# notes")
    (folder / ".hidden").write_text("x")
    os.symlink(outside / "secret.txt", folder / "secret.txt")  # a link out of the folder
    os.symlink("/etc/passwd", folder / "sub" / "passwd")
    os.symlink(folder / "config.json", folder / "config-copy.json")  # a link inside it: still not followed
    os.symlink(outside / "dir", folder / "linked")  # a linked folder is not walked into
    os.mkfifo(folder / "pipe")

    files = folder_files(folder, ignore=(".*",))
    assert sorted(files) == ["config.json", "sub/notes.md"]
    assert files.skipped == {
        ".hidden": "ignored (build bookkeeping or hidden file)",
        "config-copy.json": "symbolic link (links are never followed)",
        "linked": "symbolic link to a folder (not followed)",
        "pipe": "not a regular file",
        "secret.txt": "symbolic link (links are never followed)",
        "sub/passwd": "symbolic link (links are never followed)",
    }


def test_pickles_are_found_by_suffix_header_and_zip(tmp_path: Path) -> None:
    names = {}
    for name in ("weights.bin", "model.pt", "state.pkl", "extra.joblib"):
        names[name] = tmp_path / name
        names[name].write_bytes(b"anything")
    names["renamed.data"] = tmp_path / "renamed.data"
    names["renamed.data"].write_bytes(pickle.dumps({"a": 1}, protocol=4))  # a pickle under another name
    names["archive.zip"] = tmp_path / "archive.zip"
    torch.save({"w": torch.zeros(2)}, names["archive.zip"])  # torch's zip format holds data.pkl
    clean = {"config.json": b'{"a": 1}', "notes.md": b"# hi"}
    for name, content in clean.items():
        names[name] = tmp_path / name
        names[name].write_bytes(content)
    plain_zip = tmp_path / "images.zip"
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("a.png", b"png")
    names["images.zip"] = plain_zip
    names["model.safetensors"] = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(160)}, names["model.safetensors"])
    assert pickle_files(names) == [
        "archive.zip", "extra.joblib", "model.pt", "renamed.data", "state.pkl", "weights.bin",
    ]  # fmt: skip


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_pickle_protocol_is_recognised(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(pickle.dumps([1], protocol=protocol))
    assert pickle_files({"x.json": path}) == ["x.json"]
