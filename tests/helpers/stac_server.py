"""A real STAC API on loopback (stac-fastapi-static over a static catalog written with pystac) serving
Cloud-Optimized GeoTIFFs written with rio-cogeo, plus a Planetary Computer SAS-token endpoint in its format.

* :func:`naip_cogs`: COGs of the three real NAIP rasters of ``../shared/data/naip-nd`` (2010, 2014, 2020);
* :func:`s2_cogs`: single-band Sentinel-2-like COGs (B02, B03, B04, B08; uint16, 10 m, EPSG:32614) tiled from a
  real BigEarthNet L2A patch, one set per scene;
* :class:`StacServer`: the API at ``url`` (``/search``, ``/collections/...``), the catalog folder served as static
  files with HTTP range requests (so GDAL reads the COGs by windows), a request log, and
  ``/api/sas/v1/token/{account}/{container}`` answering ``{"msft:expiry": ..., "token": ...}`` like the Planetary
  Computer (a new token per request; expiry 30 s ahead, so the SDK asks again each time).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping
from starlette.requests import Request
from starlette.responses import JSONResponse

from tests.helpers.data import REPO_ROOT, SHARED_DATA, s2_stack
from tests.helpers.loopback import LoopbackServer

NAIP_DIR = SHARED_DATA / "naip-nd"


def _cog(data: np.ndarray, path: Path, crs: str, transform, nodata: float | None = None) -> None:
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    profile = {"driver": "GTiff", "height": data.shape[1], "width": data.shape[2], "count": data.shape[0],
               "dtype": data.dtype, "crs": crs, "transform": transform, "nodata": nodata}  # fmt: skip
    with rasterio.MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(data)
        with memory.open() as src:
            cog_translate(src, str(path), cog_profiles.get("deflate"), quiet=True, overview_level=2)


def naip_cogs(folder: Path) -> list[Path]:
    """COGs of the real NAIP rasters, ``folder/naip/<name>.tif``."""
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    out = folder / "naip"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for source in sorted(NAIP_DIR.glob("*.tif")):
        target = out / source.name
        cog_translate(str(source), str(target), cog_profiles.get("deflate"), quiet=True)
        paths.append(target)
    return paths


def _footprint(path: Path) -> tuple[dict, list[float]]:
    with rasterio.open(path) as src:
        bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    return mapping(box(*bounds)), list(bounds)


def naip_item(path: Path, href: str) -> dict:
    """A STAC item of a NAIP COG the way the Planetary Computer describes NAIP (asset ``image``, RGBN)."""
    geometry, bbox = _footprint(path)
    date = re.search(r"_(\d{8})", path.name)[1]
    bands = [{"name": n, "common_name": n.lower()} for n in ("Red", "Green", "Blue", "NIR")]
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": path.stem, "geometry": geometry, "bbox": bbox,
        "properties": {"datetime": f"{date[:4]}-{date[4:6]}-{date[6:]}T16:00:00Z", "gsd": 5.0, "naip:year": date[:4]},
        "links": [],
        "assets": {"image": {"href": href, "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                             "roles": ["data"], "eo:bands": bands}},
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
    }  # fmt: skip


#: UTM zone 14N origin of the Sentinel-2-like scenes: covers the NAIP area (about -99.19..-99.13 E, 47.00..47.04 N).
S2_ORIGIN = (486000.0, 5210000.0)


def s2_cogs(folder: Path, name: str, size: int = 480) -> dict[str, Path]:
    """Four single-band COGs of one Sentinel-2-like scene (real L2A values tiled to ``size`` px at 10 m)."""
    stack = s2_stack()  # (12, 120, 120) uint16, L2A order B01..B12
    order = {"B02": 1, "B03": 2, "B04": 3, "B08": 7}
    out = folder / "s2" / name
    out.mkdir(parents=True, exist_ok=True)
    transform = from_origin(*S2_ORIGIN, 10.0, 10.0)
    paths = {}
    for band, index in order.items():
        data = np.tile(stack[index], (size // 120, size // 120))[None].astype(np.uint16)
        data[0, 0, 0] = 0  # one nodata pixel, as scene edges have
        paths[band] = out / f"{band}.tif"
        _cog(data, paths[band], "EPSG:32614", transform, nodata=0)
    return paths


def s2_item(name: str, when: str, cloud: float | None, hrefs: dict[str, str], size: int = 480) -> dict:
    """A Sentinel-2 L2A item with one asset per band (Planetary Computer keys)."""
    x0, y0 = S2_ORIGIN
    bounds = transform_bounds("EPSG:32614", "EPSG:4326", x0, y0 - 10 * size, x0 + 10 * size, y0)
    properties = {"datetime": when, "platform": "Sentinel-2A", "s2:processing_baseline": "05.00", "proj:epsg": 32614}
    if cloud is not None:
        properties["eo:cloud_cover"] = cloud
    cog = "image/tiff; application=geotiff; profile=cloud-optimized"
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": name, "geometry": mapping(box(*bounds)), "bbox": list(bounds),
        "properties": properties, "links": [],
        "assets": {band: {"href": href, "type": cog, "roles": ["data"]} for band, href in hrefs.items()},
    }  # fmt: skip


def write_catalog(root: Path, collections: dict[str, list[dict]]) -> Path:
    """A self-contained static STAC catalog with one collection per key; returns ``catalog.json``."""
    import pystac

    catalog = pystac.Catalog(id="graft-test", description="loopback test catalog")
    for name, items in collections.items():
        stac_items = [pystac.Item.from_dict(item) for item in items]
        extent = pystac.Extent(
            pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
            pystac.TemporalExtent([[datetime(2000, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)]]),
        )
        collection = pystac.Collection(id=name, description=name, extent=extent, license="other")
        collection.add_items(stac_items)
        catalog.add_child(collection)
    catalog.normalize_hrefs(str(root / "stac"))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "stac" / "catalog.json"


class RequestLog:
    """What the server was asked, read from the log file the server process appends to.

    Attributes:
        path: ``requests.jsonl`` in the served root: ``{"method", "path", "range"}`` or ``{"token": true}`` per line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    @property
    def requests(self) -> list[dict]:
        return [e for e in self._entries() if "path" in e]

    @property
    def tokens(self) -> int:
        return sum("token" in e for e in self._entries())

    def ranges(self, suffix: str) -> list[str]:
        return [e["range"] for e in self.requests if e["path"].endswith(suffix) and e["range"]]


def build_app(root: Path):  # noqa: ANN201 - a FastAPI app
    """The STAC API over ``root/stac/catalog.json``, with the token endpoint and the request log."""
    from stac_fastapi.static.api import Settings, make_api

    settings = Settings(catalog_href=str(root / "stac" / "catalog.json"), reload=False, log_level="warning")
    app = make_api(settings).app
    # stac-fastapi 5.2's CORSMiddleware passes its arguments to Starlette's by position, and Starlette 1.x added a
    # parameter in the middle (allow_private_network): the stack fails to build. CORS is irrelevant on loopback.
    app.user_middleware = [m for m in app.user_middleware if m.cls.__name__ != "CORSMiddleware"]
    log = root / "requests.jsonl"

    def append(entry: dict) -> None:
        with log.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")

    @app.middleware("http")
    async def record(request: Request, call_next):  # noqa: ANN001, ANN202
        append({"method": request.method, "path": request.url.path, "range": request.headers.get("range")})
        return await call_next(request)

    async def token(request: Request) -> JSONResponse:
        append({"token": True})
        count = sum(1 for line in log.read_text().splitlines() if '"token"' in line)
        expiry = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        sas = (
            f"st=2026-01-01T00%3A00%3A00Z&se={expiry.replace(':', '%3A')}&sp=rl&sv=2021-06-08&sr=c&skoid=t&sig=t{count}"
        )
        return JSONResponse({"msft:expiry": expiry, "token": sas})

    app.add_route("/api/sas/v1/token/{account}/{container}", token, methods=["GET"])
    return app


class StacServer:
    """``with StacServer(root) as server:`` then write the catalog with hrefs under ``server.url`` (see module doc).

    The server runs in its own process: GDAL (through rasterio) reads the COGs with the GIL held, so a server thread
    in the reading process could never answer it.

    Args:
        root: Folder served; the catalog goes to ``root/stac/catalog.json`` (written after start, when the port is
            known).
    """

    def __init__(self, root: Path) -> None:
        (root / "stac").mkdir(parents=True, exist_ok=True)
        self.root = root
        self.log = RequestLog(root / "requests.jsonl")
        self.url = ""
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> StacServer:
        port_file = self.root / "port"
        port_file.unlink(missing_ok=True)
        command = [sys.executable, "-m", "tests.helpers.stac_server", str(self.root)]
        self._process = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"STAC server did not start: {self._process.communicate()[1].decode()[-2000:]}")
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.communicate(timeout=30)

    def href(self, path: Path) -> str:
        """URL of a file under the served folder."""
        return f"{self.url}/{path.relative_to(self.root / 'stac').as_posix()}"


def main() -> None:
    """Serve ``argv[1]`` (the root folder) on a free loopback port, written to ``<root>/port`` once listening."""
    root = Path(sys.argv[1])
    with LoopbackServer(build_app(root), "stac") as server:
        (root / "port.tmp").write_text(str(server.port))
        (root / "port.tmp").rename(root / "port")
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
