"""A loopback image host for the download tests: seeded JPEGs by photo id, and every way a download fails.

Routes (``<id>`` is any photo id):

* ``/photos/<id>.jpg``: a JPEG of ``size`` (default 400 x 300), smooth seeded content (so its pHash is stable);
* ``/missing/<id>.jpg``: 404; ``/slow/<id>.jpg``: answers after ``slow_seconds``; ``/truncated/<id>.jpg``: the
  first half of a JPEG (with a matching Content-Length, as a server with a broken file sends it);
  ``/html/<id>.jpg``: an HTML page; ``/flaky/<id>.jpg``: HTTP 429 (``Retry-After: 0``) on the first request of each
  id, then the photo; ``/rotated/<id>.jpg``: a 400 x 300 JPEG stored with EXIF orientation 6 (shows 300 x 400);
  ``/small/<id>.jpg``: a 160 x 120 JPEG (kept byte for byte).
"""

from __future__ import annotations

import asyncio
import io
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def photo_array(photo_id: str, size: tuple[int, int] = (400, 300)) -> np.ndarray:
    """Seeded smooth RGB content for a photo id, shape ``(height, width, 3)`` uint8."""
    rng = np.random.default_rng(zlib.crc32(photo_id.encode()))
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC))


def photo_jpeg(photo_id: str, size: tuple[int, int] = (400, 300), exif_orientation: int | None = None) -> bytes:
    """The JPEG bytes of a photo id."""
    image = Image.fromarray(photo_array(photo_id, size))
    buffer = io.BytesIO()
    if exif_orientation is None:
        image.save(buffer, format="JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


@dataclass
class PhotoHost:
    """Settings and request log of the image host."""

    size: tuple[int, int] = (400, 300)
    slow_seconds: float = 3.0
    requests: Counter = field(default_factory=Counter)


def build_app(host: PhotoHost) -> Starlette:
    async def serve(request: Request) -> Response:
        kind, name = request.path_params["kind"], request.path_params["name"]
        photo_id = name.removesuffix(".jpg")
        host.requests[kind] += 1
        host.requests[f"{kind}/{photo_id}"] += 1
        jpeg = "image/jpeg"
        if kind == "photos":
            return Response(photo_jpeg(photo_id, host.size), media_type=jpeg)
        if kind == "small":
            return Response(photo_jpeg(photo_id, (160, 120)), media_type=jpeg)
        if kind == "rotated":
            return Response(photo_jpeg(photo_id, (400, 300), exif_orientation=6), media_type=jpeg)
        if kind == "slow":
            await asyncio.sleep(host.slow_seconds)
            return Response(photo_jpeg(photo_id, host.size), media_type=jpeg)
        if kind == "truncated":
            data = photo_jpeg(photo_id, host.size)
            return Response(data[: len(data) // 2], media_type=jpeg)
        if kind == "html":
            return Response("<html><body>This photo is no longer available</body></html>", media_type="text/html")
        if kind == "flaky":
            if host.requests[f"{kind}/{photo_id}"] == 1:
                return Response("slow down", status_code=429, headers={"Retry-After": "0"})
            return Response(photo_jpeg(photo_id, host.size), media_type=jpeg)
        return Response("not found", status_code=404)

    return Starlette(routes=[Route("/{kind}/{name}", serve)])
