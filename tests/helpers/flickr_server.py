"""A loopback server speaking Flickr's REST API for ``flickr.photos.search``, over a seeded synthetic population.

What it reproduces (from Flickr's API documentation): ``POST /services/rest/`` with form parameters signed with
OAuth 1.0a (HMAC-SHA1, consumer key and secret, no user token; a wrong key answers error 100, a bad signature
error 96); ``format=json&nojsoncallback=1`` answers ``{"photos": {"page", "pages", "perpage", "total", "photo":
[...]}, "stat": "ok"}`` with the requested extras (numbers of the photo records as strings, as Flickr sends them);
``bbox``, ``min_taken_date``/``max_taken_date`` (inclusive, MySQL datetimes or Unix seconds), ``license``,
``accuracy`` (at least), ``has_geo``, ``media``; ``sort=date-posted-asc``; at most 250 results per page for geo
queries; and the result cap: ``total`` is the true count, but pages beyond the first ``cap`` results repeat the
last reachable page. Faults are injected per request: HTTP 429 with ``Retry-After``, HTTP 500, Flickr error 105,
a body that is not JSON, or blocking until released (to kill a client mid-run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import numpy as np
from oauthlib.oauth1.rfc5849 import signature, utils
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_KEY = "test-flickr-key-7c1f0e"
API_SECRET = "test-flickr-secret-2b9a"
GEO_PER_PAGE_MAX = 250


def _seconds(value: str) -> int:
    if value.strip().lstrip("-").isdigit():
        return int(value)
    return int(datetime.fromisoformat(value.strip().replace(" ", "T")).replace(tzinfo=UTC).timestamp())


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def make_population(
    n: int,
    bbox: tuple[float, float, float, float],
    seed: int = 0,
    *,
    cluster: tuple[float, float, float, int] | None = None,
    dates: tuple[str, str] = ("2015-01-01", "2020-12-31"),
    image_base: str = "http://127.0.0.1:9/photos",
    noise: bool = True,
) -> list[dict]:
    """Seeded synthetic Flickr photos.

    Args:
        n: Photos spread uniformly over ``bbox``.
        bbox: ``(west, south, east, north)``.
        seed: Seed.
        cluster: ``(lon, lat, half_side_degrees, count)``: a dense "city" of extra photos.
        dates: Capture dates are uniform in this range.
        image_base: Image URLs are ``<image_base>/<id>.jpg``.
        noise: Mix in what a real population has: other licences, lower accuracies, videos, unknown dates.

    Returns:
        Photo dicts with Flickr's field names (``latitude`` ... as numbers; the server formats them).
    """
    rng = np.random.default_rng(seed)
    west, south, east, north = bbox
    lon = rng.uniform(west, east, n)
    lat = rng.uniform(south, north, n)
    if cluster is not None:
        cx, cy, half, count = cluster
        lon = np.concatenate([lon, rng.uniform(cx - half, cx + half, count)])
        lat = np.concatenate([lat, rng.uniform(cy - half, cy + half, count)])
    total = len(lon)
    start, end = _seconds(dates[0]), _seconds(dates[1])
    taken = rng.integers(start, end, total)
    licence = rng.choice([4, 5, 6, 9, 10, 11], total) if not noise else rng.choice(np.arange(0, 14), total)
    accuracy = np.full(total, 16) if not noise else rng.choice([16, 16, 16, 15, 11, 6], total)
    media = np.where(rng.random(total) < (0.03 if noise else 0.0), "video", "photo")
    unknown = rng.random(total) < (0.02 if noise else 0.0)
    words = ["farm", "barn", "river", "road", "church", "lake", "sunset", "tractor", "prairie", "grain", "elevator"]
    photos = []
    for i in range(total):
        photo_id = str(10_000_000 + i * 7 + int(rng.integers(0, 7)))
        tags = " ".join(rng.choice(words, 3, replace=False))
        photos.append(
            {
                "id": photo_id,
                "owner": f"{1000 + i % 97}@N0{i % 9}",
                "ownername": f"user {i % 97}",
                "secret": f"{i:08x}",
                "server": "65535",
                "farm": 66,
                "title": f"photo {i} {tags.split()[0]}",
                "description": f"a {tags.replace(' ', ', ')} near the place",
                "tags": tags,
                "datetaken": _iso(int(taken[i])),
                "datetakenunknown": "1" if unknown[i] else "0",
                "dateupload": int(start + i),
                "latitude": round(float(lat[i]), 6),
                "longitude": round(float(lon[i]), 6),
                "accuracy": int(accuracy[i]),
                "license": int(licence[i]),
                "media": str(media[i]),
                "url_z": f"{image_base}/{photo_id}.jpg",
            }
        )
    return photos


@dataclass
class FlickrState:
    """The server's population, settings and request log.

    Attributes:
        photos: The population (:func:`make_population`).
        cap: Results any query can return.
        faults: Faults consumed one per request, in order (``"429"``, ``"500"``, ``"105"``, ``"malformed"``,
            ``"ok"``).
        block_after: Requests after this many wait until ``release`` is set (to kill a client mid-run).
        requests: Requests served.
        seen_auth: Every ``Authorization`` header received (the tests check the key travels only there).
    """

    photos: list[dict]
    cap: int = 4000
    faults: list[str] = field(default_factory=list)
    block_after: int | None = None
    requests: int = 0
    methods: Counter = field(default_factory=Counter)
    release: threading.Event = field(default_factory=threading.Event)
    blocked: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    columns: dict | None = None
    endpoint: str = ""


def _fail(code: int, message: str) -> JSONResponse:
    return JSONResponse({"stat": "fail", "code": code, "message": message})


def _verify_oauth(request: Request, body: str) -> JSONResponse | None:
    """Flickr's answer to a request not signed with the test key and secret, else ``None``."""
    header = request.headers.get("authorization", "")
    if not header.startswith("OAuth "):
        return _fail(100, "Invalid API Key (Key has invalid format)")
    params = dict(utils.parse_authorization_header(header))
    if params.get("oauth_consumer_key") != API_KEY:
        return _fail(100, "Invalid API Key (Key not found)")
    collected = signature.collect_parameters(body=body, headers={"Authorization": header})
    base = signature.signature_base_string(
        "POST", signature.base_string_uri(str(request.url)), signature.normalize_parameters(collected)
    )
    if signature.sign_hmac_sha1(base, API_SECRET, "") != utils.unescape(params.get("oauth_signature", "")):
        return _fail(96, "Invalid signature")
    return None


def _record(photo: dict) -> dict:
    record = {k: v for k, v in photo.items() if k != "dateupload"}
    record.update(
        latitude=f"{photo['latitude']:.6f}",
        longitude=f"{photo['longitude']:.6f}",
        accuracy=str(photo["accuracy"]),
        license=str(photo["license"]),
        description={"_content": photo["description"]},
        ispublic=1,
        isfriend=0,
        isfamily=0,
        datetakengranularity=0,
        context=0,
        height_z=480,
        width_z=640,
    )
    return record


def _columns(state: FlickrState) -> dict[str, np.ndarray]:
    if state.columns is None or len(state.columns["lon"]) != len(state.photos):
        photos = state.photos
        state.columns = {
            "lon": np.array([p["longitude"] for p in photos]),
            "lat": np.array([p["latitude"] for p in photos]),
            "taken": np.array([_seconds(p["datetaken"]) for p in photos]),
            "license": np.array([p["license"] for p in photos]),
            "accuracy": np.array([p["accuracy"] for p in photos]),
            "video": np.array([p["media"] == "video" for p in photos]),
            "upload": np.array([p["dateupload"] for p in photos]),
        }
    return state.columns


def search(state: FlickrState, params: dict[str, str]) -> dict:
    """``flickr.photos.search`` over the population (the JSON body of the answer)."""
    c = _columns(state)
    keep = np.ones(len(state.photos), dtype=bool)
    if "bbox" in params:
        west, south, east, north = (float(v) for v in params["bbox"].split(","))
        keep &= (c["lon"] >= west) & (c["lon"] <= east) & (c["lat"] >= south) & (c["lat"] <= north)
    if "min_taken_date" in params:
        keep &= c["taken"] >= _seconds(params["min_taken_date"])
    if "max_taken_date" in params:
        keep &= c["taken"] <= _seconds(params["max_taken_date"])
    if "license" in params:
        keep &= np.isin(c["license"], [int(v) for v in params["license"].split(",")])
    if "accuracy" in params:
        keep &= c["accuracy"] >= int(params["accuracy"])
    if params.get("media") == "photos":
        keep &= ~c["video"]
    matches = np.flatnonzero(keep)
    if params.get("sort") == "date-posted-asc":
        matches = matches[np.argsort(c["upload"][matches], kind="stable")]
    per_page = min(int(params.get("per_page", 100)), GEO_PER_PAGE_MAX if "bbox" in params else 500)
    total = len(matches)
    pages = max(math.ceil(total / per_page), 1)
    page = max(int(params.get("page", 1)), 1)
    reachable = min(total, state.cap)
    start = (page - 1) * per_page
    if start >= reachable and reachable > 0:  # past the cap Flickr repeats the last reachable page
        start = (math.ceil(reachable / per_page) - 1) * per_page
    records = [_record(state.photos[i]) for i in matches[start : min(start + per_page, reachable)]]
    return {
        "photos": {"page": page, "pages": pages, "perpage": per_page, "total": total, "photo": records},
        "stat": "ok",
    }


def build_app(state: FlickrState) -> Starlette:
    async def rest(request: Request) -> Response:
        body = (await request.body()).decode()
        params = dict(parse_qsl(body, keep_blank_values=True))
        params.update(request.query_params)
        with state.lock:
            state.requests += 1
            number = state.requests
            fault = state.faults.pop(0) if state.faults else "ok"
        if state.block_after is not None and number > state.block_after:
            state.blocked.set()
            while not state.release.is_set():
                await asyncio.sleep(0.02)
        if fault == "429":
            return Response("Too Many Requests", status_code=429, headers={"Retry-After": "0"})
        if fault == "500":
            return Response("Internal Server Error", status_code=500)
        if fault == "malformed":
            return Response("<html>upstream error</html>", media_type="text/html")
        refused = _verify_oauth(request, body)
        if refused is not None:
            return refused
        if fault == "105":
            return _fail(105, "Service currently unavailable")
        state.methods[params.get("method")] += 1
        if params.get("method") != "flickr.photos.search":
            return _fail(112, f'Method "{params.get("method")}" not found')
        if params.get("format") != "json":
            return _fail(111, f'Format "{params.get("format")}" not found')
        return Response(json.dumps(search(state, params)), media_type="application/json")

    return Starlette(routes=[Route("/services/rest/", rest, methods=["POST", "GET"])])


@contextlib.contextmanager
def serve_flickr(photos: list[dict], cap: int = 4000, name: str = "flickr") -> Iterator[FlickrState]:
    """``with serve_flickr(photos, cap) as state:`` a running API; ``state.endpoint`` is its REST URL."""
    from tests.helpers.loopback import LoopbackServer

    state = FlickrState(photos, cap=cap)
    with LoopbackServer(build_app(state), name) as server:
        state.endpoint = f"{server.url}/services/rest/"
        yield state
