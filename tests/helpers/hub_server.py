"""A small Hub-compatible HTTP server for push/pull tests without network.

It implements the part of the Hugging Face Hub HTTP API that `huggingface_hub` 2.x, transformers and datasets use for
`create_repo`, `create_commit` / `upload_folder` / `push_to_hub` (preupload, the NDJSON commit endpoint and the
git-LFS "basic" transfer: batch + PUT), `snapshot_download`, `from_pretrained(repo_id)` and
`load_dataset(repo_id, streaming=True)` (model/dataset info, tree, paths-info and `resolve` with HTTP Range).
Xet is not implemented: clients must run with `HF_HUB_DISABLE_XET=1`.

Repositories live in memory; each commit is a full snapshot `path -> _Blob`. Unknown routes answer 404 and are
recorded in `HubState.unhandled` so a test can show what a client asked for.

Run standalone for manual checks, from the repository root: `python -m tests.helpers.hub_server --port 8765`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helpers.data import REPO_ROOT

USER = "graft-tester"
HUB_TOKEN = "hf_graft_test_token"
# Paths stored through git-LFS, as the Hub's default .gitattributes does.
_LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt", ".parquet", ".arrow", ".npy", ".png", ".jpg", ".tif", ".zip")
_LFS_MIN_SIZE = 10 * 1024 * 1024


@dataclass
class _Blob:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def git_oid(self) -> str:
        content = self.pointer if self.lfs else self.data
        return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()

    def entry(self, path: str) -> dict:
        info: dict = {"type": "file", "path": path, "size": len(self.data), "oid": self.git_oid}
        if self.lfs:
            info["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": len(self.pointer)}
        return info


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    commits: list[tuple[str, dict[str, _Blob]]] = field(default_factory=list)

    def snapshot(self, revision: str) -> tuple[str, dict[str, _Blob]] | None:
        if revision in ("main", "HEAD") and self.commits:
            return self.commits[-1]
        return next((c for c in self.commits if c[0] == revision), None)


@dataclass
class HubState:
    """In-memory repositories, LFS objects and a log of requests the server could not answer."""

    token: str | None = None
    repos: dict[tuple[str, str], _Repo] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)
    unhandled: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse(
        {"error": message}, status_code=status, headers={"X-Error-Code": code, "X-Error-Message": message}
    )


def _new_commit_oid() -> str:
    return hashlib.sha1(uuid.uuid4().bytes).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _folders(files: dict[str, _Blob]) -> set[str]:
    return {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}


def _folder_entry(path: str) -> dict:
    return {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()}


class _Handler:
    def __init__(self, state: HubState) -> None:
        self.state = state

    # -------------------------------------------------------------------------------------------- dispatch
    async def handle(self, request: Request) -> Response:
        raw = request.scope.get("raw_path", request.url.path.encode()).decode().split("?", 1)[0]
        parts = [unquote(p) for p in raw.strip("/").split("/")]
        self.state.requests.append(f"{request.method} {raw}")
        if self.state.token is not None and not raw.startswith("/lfs-upload/"):
            if request.headers.get("authorization") != f"Bearer {self.state.token}":
                return _error(401, "Unauthorized", "Invalid credentials in Authorization header")
        response = await self._route(request, parts)
        if response is None:
            self.state.unhandled.append(f"{request.method} {raw}")
            return _error(404, "NotFound", f"route not implemented by the test Hub: {request.method} {raw}")
        return response

    async def _route(self, request: Request, parts: list[str]) -> Response | None:
        method = request.method
        if parts[:2] == ["api", "whoami-v2"]:
            return JSONResponse(
                {
                    "type": "user",
                    "name": USER,
                    "fullname": "GRAFT tester",
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}},
                }
            )
        if parts[:2] == ["api", "validate-yaml"] and method == "POST":
            return await self._validate_yaml(request)
        if parts[:3] == ["api", "repos", "create"] and method == "POST":
            return await self._create_repo(request)
        if parts[0] == "api" and len(parts) >= 4 and parts[1] in ("models", "datasets", "spaces"):
            repo_type = parts[1][:-1]
            repo = self.state.repos.get((repo_type, f"{parts[2]}/{parts[3]}"))
            if repo is None:
                return _error(404, "RepoNotFound", f"Repository {parts[2]}/{parts[3]} not found")
            rest = parts[4:]
            if not rest:
                return self._info(repo, "main")
            action, args = rest[0], rest[1:]
            if action == "revision" and args:
                return self._info(repo, "/".join(args))
            if action == "preupload" and method == "POST":
                return await self._preupload(request)
            if action == "commit" and method == "POST":
                return await self._commit(request, repo, "/".join(args))
            if action == "tree" and args:
                return self._tree(request, repo, args[0], "/".join(args[1:]))
            if action == "paths-info" and args and method == "POST":
                return await self._paths_info(request, repo, "/".join(args))
            return None
        if parts[0] == "lfs-upload" and method == "PUT" and len(parts) == 2:
            return await self._lfs_put(request, parts[1])
        repo_type = "model"
        if parts[0] in ("datasets", "spaces"):
            repo_type, parts = parts[0][:-1], parts[1:]
        if len(parts) >= 3 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            return await self._lfs_batch(request)
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            repo = self.state.repos.get((repo_type, f"{parts[0]}/{parts[1]}"))
            if repo is None:
                return _error(404, "RepoNotFound", f"Repository {parts[0]}/{parts[1]} not found")
            return self._resolve(request, repo, parts[3], "/".join(parts[4:]))
        return None

    # ----------------------------------------------------------------------------------------------- repos
    async def _create_repo(self, request: Request) -> Response:
        payload = await request.json()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        base = str(request.base_url).rstrip("/")
        url = f"{base}/{repo_id}" if repo_type == "model" else f"{base}/{repo_type}s/{repo_id}"
        with self.state.lock:
            if (repo_type, repo_id) in self.state.repos:
                # The Hub names the existing repo's URL in its 409 body; create_repo(exist_ok=True) returns it.
                message = "You already created this repo"
                headers = {"X-Error-Code": "RepoExists", "X-Error-Message": message}
                return JSONResponse({"error": message, "url": url}, status_code=409, headers=headers)
            repo = _Repo(repo_type, repo_id)
            gitattributes = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in _LFS_SUFFIXES)
            repo.commits.append((_new_commit_oid(), {".gitattributes": _Blob(gitattributes.encode(), lfs=False)}))
            self.state.repos[(repo_type, repo_id)] = repo
        return JSONResponse({"url": url, "name": repo_id, "id": uuid.uuid4().hex})

    async def _validate_yaml(self, request: Request) -> Response:
        content = (await request.json()).get("content", "")
        errors = []
        if content.startswith("---\n"):
            header, sep, _ = content[4:].partition("\n---\n")
            try:
                metadata = yaml.safe_load(header) if sep else None
                if not sep or not isinstance(metadata, (dict, type(None))):
                    errors.append({"message": "metadata block is not a closed YAML mapping"})
            except yaml.YAMLError as err:
                errors.append({"message": f"YAML does not parse: {err}"})
        return JSONResponse({"errors": errors, "warnings": []}, status_code=400 if errors else 200)

    def _info(self, repo: _Repo, revision: str) -> Response:
        snap = repo.snapshot(revision)
        if snap is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        oid, files = snap
        siblings = []
        for path, blob in sorted(files.items()):
            sibling: dict = {"rfilename": path, "size": len(blob.data), "blobId": blob.git_oid}
            if blob.lfs:
                sibling["lfs"] = {"size": len(blob.data), "sha256": blob.sha256, "pointerSize": len(blob.pointer)}
            siblings.append(sibling)
        return JSONResponse(
            {
                "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
                "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": oid,
                "lastModified": _now(),
                "createdAt": _now(),
                "private": False,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
            }
        )

    # ---------------------------------------------------------------------------------------------- upload
    async def _preupload(self, request: Request) -> Response:
        payload = await request.json()
        files = []
        for item in payload["files"]:
            path, size = item["path"], int(item["size"])
            sample = base64.b64decode(item["sample"])
            binary = b"\0" in sample
            lfs = path.lower().endswith(_LFS_SUFFIXES) or size >= _LFS_MIN_SIZE or binary
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": None})
        return JSONResponse({"files": files, "commitOid": None})

    async def _lfs_batch(self, request: Request) -> Response:
        payload = await request.json()
        base = str(request.base_url).rstrip("/")
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], int(obj["size"])
            entry: dict = {"oid": oid, "size": size, "authenticated": True}
            if oid not in self.state.lfs_objects:
                entry["actions"] = {"upload": {"href": f"{base}/lfs-upload/{oid}", "expires_in": 3600}}
            objects.append(entry)
        return JSONResponse({"transfer": "basic", "objects": objects}, media_type="application/vnd.git-lfs+json")

    async def _lfs_put(self, request: Request, oid: str) -> Response:
        data = await request.body()
        if hashlib.sha256(data).hexdigest() != oid:
            return _error(400, "BadRequest", f"uploaded content does not hash to {oid}")
        with self.state.lock:
            self.state.lfs_objects[oid] = data
        return Response(status_code=200)

    async def _commit(self, request: Request, repo: _Repo, revision: str) -> Response:
        body = await request.body()
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        with self.state.lock:
            snap = repo.snapshot(revision)
            if snap is None:
                return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            files = dict(snap[1])
            summary = ""
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "header":
                    summary = value.get("summary", "")
                elif key == "file":
                    files[value["path"]] = _Blob(base64.b64decode(value["content"]), lfs=False)
                elif key == "lfsFile":
                    data = self.state.lfs_objects.get(value["oid"])
                    if data is None:
                        return _error(422, "BadRequest", f"LFS object {value['oid']} of {value['path']} not uploaded")
                    files[value["path"]] = _Blob(data, lfs=True)
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: b for p, b in files.items() if not p.startswith(prefix)}
                else:
                    return _error(400, "BadRequest", f"unsupported commit operation {key!r}")
            oid = _new_commit_oid()
            repo.commits.append((oid, files))
        base = str(request.base_url).rstrip("/")
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return JSONResponse(
            {"commitUrl": f"{base}/{prefix}{repo.repo_id}/commit/{oid}", "commitOid": oid, "summary": summary}
        )

    # -------------------------------------------------------------------------------------------- download
    def _tree(self, request: Request, repo: _Repo, revision: str, path: str) -> Response:
        snap = repo.snapshot(revision)
        if snap is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = snap[1]
        recursive = request.query_params.get("recursive", "false").lower() in ("true", "1")
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        if prefix and prefix[:-1] not in _folders(files):
            return _error(404, "EntryNotFound", f"{path} does not exist on {revision}")
        entries = []
        for folder in sorted(_folders(files)):
            rel = folder[len(prefix) :]
            if folder.startswith(prefix) and rel and (recursive or "/" not in rel):
                entries.append(_folder_entry(folder))
        for file_path, blob in sorted(files.items()):
            rel = file_path[len(prefix) :]
            if file_path.startswith(prefix) and (recursive or "/" not in rel):
                entries.append(blob.entry(file_path))
        return JSONResponse(entries)

    async def _paths_info(self, request: Request, repo: _Repo, revision: str) -> Response:
        snap = repo.snapshot(revision)
        if snap is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = snap[1]
        body = (await request.body()).decode()
        if request.headers.get("content-type", "").startswith("application/json"):
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body).get("paths", [])
        folders = _folders(files)
        out = []
        for path in paths:
            path = path.strip("/")
            if path in files:
                out.append(files[path].entry(path))
            elif path in folders:
                out.append(_folder_entry(path))
        return JSONResponse(out)

    def _resolve(self, request: Request, repo: _Repo, revision: str, path: str) -> Response:
        snap = repo.snapshot(revision)
        if snap is None:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        oid, files = snap
        blob = files.get(path)
        if blob is None:
            return _error(404, "EntryNotFound", f"Entry not found: {path}")
        data = blob.data
        etag = blob.sha256 if blob.lfs else blob.git_oid
        headers = {"X-Repo-Commit": oid, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if blob.lfs:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        status = 200
        range_header = request.headers.get("range")
        if range_header:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if match is None:
                return _error(416, "RangeNotSatisfiable", f"bad Range header {range_header!r}")
            start_s, end_s = match.groups()
            if start_s:
                start, end = int(start_s), min(int(end_s) if end_s else len(data) - 1, len(data) - 1)
            else:
                start, end = max(len(data) - int(end_s), 0), len(data) - 1
            if start >= len(data) or start > end:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        headers["Content-Length"] = str(len(data))
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        return Response(content=data, status_code=status, headers=headers, media_type="application/octet-stream")


def build_app(state: HubState) -> Starlette:
    """A Starlette app answering every path through `_Handler.handle`."""
    handler = _Handler(state)
    methods = ["GET", "HEAD", "POST", "PUT", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", handler.handle, methods=methods)])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HubServer:
    """A running test Hub on 127.0.0.1 (uvicorn in a daemon thread); use as a context manager.

    Args:
        token: When set, every API request must carry `Authorization: Bearer <token>` (401 otherwise).
    """

    def __init__(self, token: str | None = None) -> None:
        self.state = HubState(token=token)
        # Port 0: the OS picks a free port at bind time (no race with other test processes).
        config = uvicorn.Config(build_app(self.state), host="127.0.0.1", port=0, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="test-hub", daemon=True)
        self.port = 0
        self.endpoint = ""

    def __enter__(self) -> HubServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("test Hub did not start on 127.0.0.1")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        """The files of the newest commit of a repository."""
        repo = self.state.repos[(repo_type, repo_id)]
        return {path: blob.data for path, blob in repo.commits[-1][1].items()}

    def num_commits(self, repo_id: str, repo_type: str = "model") -> int:
        return len(self.state.repos[(repo_type, repo_id)].commits)


def online_env(server: HubServer, home: Path) -> dict[str, str]:
    """Environment of a subprocess that talks to the test Hub: online mode, LFS uploads, an empty cache.

    huggingface_hub, transformers and datasets read these at import time, hence subprocesses.
    """
    env = dict(os.environ)
    env.update(
        {
            "HF_ENDPOINT": server.endpoint,
            "HF_TOKEN": HUB_TOKEN,
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
            "TRANSFORMERS_OFFLINE": "0",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HOME": str(home / "hf"),
            "HF_MODULES_CACHE": str(home / "hf" / "modules"),
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    return env


def run_python(code: str, env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run `python -c code args...`; fail the test with its output when it exits non-zero."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"subprocess failed (rc {proc.returncode}):\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-6000:]}"
        )
    return proc


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    uvicorn.run(build_app(HubState()), host="127.0.0.1", port=args.port)
