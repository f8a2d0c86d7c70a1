"""A ``flickr.photos.search`` client on top of the ``flickrapi`` package: credentials from the environment, rate
limiting, retries with backoff, and the search results turned into photo-table rows.

The key and secret are read from ``FLICKR_API_KEY``/``FLICKR_API_SECRET`` and handed to ``flickrapi`` only; they
are never logged, written or put in an error message. ``flickrapi`` signs every call with OAuth 1.0a in the
``Authorization`` header; ``requests_oauthlib`` and ``oauthlib`` log that header at DEBUG level, so while a client is
open those loggers are held at WARNING and their records pass a filter that blanks the credentials.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graft_hf.extras import require

from .licenses import FLICKR_LICENSES
from .region import parse_time_seconds

__all__ = [
    "FlickrAuthError",
    "FlickrClient",
    "FlickrUnavailableError",
    "SearchPage",
    "credentials_from_env",
    "photo_row",
]

logger = logging.getLogger(__name__)

#: Extras requested with every search: geo, dates, licence, owner, text and image URLs.
EXTRAS = "description,license,date_taken,owner_name,geo,tags,media,url_z,url_c,url_l,url_m,url_o"
#: Image URL extras in order of preference (~640, 800, 1024, 500 px on the long side, then the original).
URL_EXTRAS = ("url_z", "url_c", "url_l", "url_m", "url_o")
#: Loggers that see the signed request (the OAuth header carries the key).
_CREDENTIAL_LOGGERS = ("requests_oauthlib", "oauthlib", "flickrapi", "urllib3")
#: Flickr error codes worth retrying: search unavailable, service unavailable.
_RETRY_CODES = {10, 105}


class FlickrAuthError(RuntimeError):
    """The credentials are missing or Flickr refused them."""


class FlickrUnavailableError(RuntimeError):
    """Flickr did not answer (or answered nonsense) after every retry."""


def credentials_from_env() -> tuple[str, str]:
    """``(key, secret)`` from ``FLICKR_API_KEY`` and ``FLICKR_API_SECRET``.

    Raises:
        FlickrAuthError: Either is unset; the message says where to get them and the YFCC100M alternative.
    """
    key, secret = os.environ.get("FLICKR_API_KEY", "").strip(), os.environ.get("FLICKR_API_SECRET", "").strip()
    missing = [name for name, value in (("FLICKR_API_KEY", key), ("FLICKR_API_SECRET", secret)) if not value]
    if missing:
        raise FlickrAuthError(
            f"{' and '.join(missing)} not set: export the key and secret of a Flickr app "
            "(https://www.flickr.com/services/apps/create/) in FLICKR_API_KEY and FLICKR_API_SECRET, or read a "
            "YFCC100M metadata dump instead (yfcc=PATH)"
        )
    return key, secret


class _Redact(logging.Filter):
    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self._secrets):
            for secret in self._secrets:
                message = message.replace(secret, "<redacted>")
            record.msg, record.args = message, None
        return True


class _CredentialGuard:
    """Holds the loggers that see signed requests at WARNING and blanks the credentials in their records."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self._filter = _Redact(secrets)
        self._levels: dict[str, int] = {}
        self._loggers: list[logging.Logger] = []

    def __enter__(self) -> _CredentialGuard:
        names = set(_CREDENTIAL_LOGGERS)
        names.update(n for n in logging.root.manager.loggerDict if n.split(".")[0] in _CREDENTIAL_LOGGERS)
        for name in sorted(names):
            log = logging.getLogger(name)
            self._levels[name] = log.level
            if name in _CREDENTIAL_LOGGERS:
                log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))
            log.addFilter(self._filter)
            self._loggers.append(log)
        return self

    def __exit__(self, *exc: object) -> None:
        for log in self._loggers:
            log.removeFilter(self._filter)
            log.setLevel(self._levels[log.name])


@dataclass
class SearchPage:
    """One page of ``flickr.photos.search``.

    Attributes:
        total: Photos matching the query, as Flickr reports it (may exceed what paging can return).
        pages: Pages Flickr reports.
        photos: The page's photo records (dicts as Flickr sends them).
    """

    total: int
    pages: int
    photos: list[dict]


@dataclass
class FlickrClient:
    """``flickr.photos.search`` through ``flickrapi``, rate limited, retried with exponential backoff.

    Args:
        key: API key.
        secret: API secret.
        endpoint: REST endpoint.
        timeout: Seconds per call.
        requests_per_second: Calls per second at most.
        max_retries: Retries of a failed call.
        backoff_seconds: First retry delay (doubling, at most 300 s), unless the server sends ``Retry-After``.
        sleep: Sleep function.
    """

    key: str = field(repr=False)
    secret: str = field(repr=False)
    endpoint: str
    timeout: float = 60.0
    requests_per_second: float = 1.0
    max_retries: int = 8
    backoff_seconds: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    calls: int = 0
    retries: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        flickrapi = require("flickrapi", "collect", "collecting photos from the Flickr API")
        requests = require("requests", "collect", "collecting photos from the Flickr API")
        self._api = flickrapi.FlickrAPI(
            self.key, self.secret, format="parsed-json", store_token=False, cache=False, timeout=self.timeout
        )
        self._api.REST_URL = self.endpoint
        self._session = requests.Session()  # per client (flickrapi shares one across instances)
        self._session.hooks["response"].append(self._remember_response)
        self._api.flickr_oauth.session = self._session
        self._network_errors = (requests.ConnectionError, requests.Timeout)
        self._flickr_error = flickrapi.FlickrError
        self._last_call = 0.0
        self._last_status: int | None = None
        self._retry_after: float | None = None
        self._guard = _CredentialGuard((self.key, self.secret))

    def __enter__(self) -> FlickrClient:
        self._guard.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._guard.__exit__(*exc)
        self._session.close()

    def _remember_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self._last_status = response.status_code
        retry_after = response.headers.get("Retry-After")
        try:
            self._retry_after = float(retry_after) if retry_after is not None else None
        except ValueError:
            self._retry_after = None

    def _throttle(self) -> None:
        wait = self._last_call + 1.0 / self.requests_per_second - time.monotonic()
        if wait > 0:
            self.sleep(wait)
        self._last_call = time.monotonic()

    def _retryable(self, error: Exception) -> str | None:
        """The reason to retry ``error``, ``None`` to raise it now."""
        if isinstance(error, self._network_errors):
            return "network"
        if isinstance(error, ValueError):  # a body that is not JSON
            return "malformed_response"
        if isinstance(error, self._flickr_error):
            code = getattr(error, "code", None)
            if self._last_status is not None and self._last_status != 200:
                return "http_429" if self._last_status == 429 else ("http_5xx" if self._last_status >= 500 else None)
            if code in _RETRY_CODES:
                return f"flickr_{code}"
            if code in (96, 97, 98, 100):
                raise FlickrAuthError(
                    f"Flickr refused the credentials ({error}): check FLICKR_API_KEY and FLICKR_API_SECRET (the "
                    "key and secret of the same app)"
                ) from error
        return None

    def _call(self, params: dict[str, object]) -> dict:
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            self._throttle()
            self._last_status, self._retry_after = None, None
            self.calls += 1
            try:
                reply = self._api.photos.search(**params)
                if not isinstance(reply, dict) or not isinstance(reply.get("photos"), dict):
                    raise ValueError(f"no 'photos' object in the response: {str(reply)[:200]}")
                return reply
            except Exception as error:  # noqa: BLE001 - classified below, re-raised if not retryable
                reason = self._retryable(error)
                if reason is None:
                    raise FlickrUnavailableError(f"flickr.photos.search failed: {error}") from error
                last = error
                self.retries[reason] += 1
                delay = self._retry_after if self._retry_after is not None else self.backoff_seconds * 2.0**attempt
                delay = min(delay, 300.0)
                logger.warning("Flickr call failed (%s: %s); retry %d in %.1f s", reason, error, attempt + 1, delay)
                self.sleep(delay * (1.0 + 0.1 * random.random()))
        raise FlickrUnavailableError(f"Flickr did not answer after {self.max_retries} retries (last error: {last})")

    def search(self, params: dict[str, object], page: int, per_page: int) -> SearchPage:
        """One page of ``flickr.photos.search``.

        Args:
            params: Search parameters (bbox, dates, licence, ...); ``extras`` is added.
            page: 1-based page.
            per_page: Results per page.

        Raises:
            FlickrUnavailableError: Every retry failed, or Flickr answered with a non-retryable error.
            FlickrAuthError: Flickr refused the credentials.
        """
        reply = self._call({**params, "extras": EXTRAS, "page": page, "per_page": per_page})
        photos = reply["photos"]
        try:
            total, pages = int(photos.get("total", 0)), int(photos.get("pages", 0))
        except (TypeError, ValueError) as error:
            raise FlickrUnavailableError(f"malformed search response (total/pages): {str(photos)[:200]}") from error
        records = photos.get("photo") or []
        if not isinstance(records, list):
            raise FlickrUnavailableError(f"malformed search response ('photo' is not a list): {str(records)[:200]}")
        return SearchPage(total=total, pages=pages, photos=records)


def _float(value: object) -> float:
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ValueError(f"not finite: {value!r}")
    return number


def _text(value: object) -> str:
    if isinstance(value, dict):  # description: {"_content": "..."}
        value = value.get("_content", "")
    return "" if value is None else str(value).strip()


def _image_url(record: dict) -> str | None:
    return next((str(record[k]) for k in URL_EXTRAS if record.get(k)), None)


def photo_row(record: dict, licenses: frozenset[int]) -> tuple[dict | None, str | None]:
    """A ``flickr.photos.search`` record (with :data:`EXTRAS`) -> a photo-table row.

    Args:
        record: The record as Flickr sends it.
        licenses: Licence ids kept.

    Returns:
        ``(row, None)``, or ``(None, reason)`` for a record that cannot be used: ``malformed_record`` (no id,
        unreadable coordinates, licence or date), ``no_geotag``, ``video``, ``license_not_allowed``,
        ``date_taken_unknown`` (Flickr then shows the upload date), ``no_image_url``.
    """
    try:
        photo_id = str(record["id"]).strip()
        lat, lon = _float(record.get("latitude")), _float(record.get("longitude"))
        accuracy = int(record.get("accuracy") or 0)
        licence_id = int(record["license"])
        taken = str(record.get("datetaken", "")).strip()
        parse_time_seconds(taken)
    except (KeyError, TypeError, ValueError):
        return None, "malformed_record"
    if not photo_id or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None, "malformed_record"
    if (lat == 0 and lon == 0) or accuracy == 0:
        return None, "no_geotag"
    if record.get("media", "photo") != "photo":
        return None, "video"
    if licence_id not in licenses:
        return None, "license_not_allowed"
    if str(record.get("datetakenunknown", "0")) == "1":
        return None, "date_taken_unknown"
    url = _image_url(record)
    if url is None:
        return None, "no_image_url"
    owner_id = _text(record.get("owner"))
    licence = FLICKR_LICENSES.get(licence_id)
    return {
        "photo_id": photo_id,
        "lat": lat,
        "lon": lon,
        "time": taken.replace(" ", "T", 1)[:19],
        "accuracy": accuracy,
        "url": url,
        "page_url": f"https://www.flickr.com/photos/{owner_id}/{photo_id}" if owner_id else None,
        "license": licence.name if licence else str(licence_id),
        "license_url": licence.url if licence else None,
        "owner": _text(record.get("ownername")) or owner_id or None,
        "owner_id": owner_id or None,
        "title": _text(record.get("title")),
        "tags": ", ".join(_text(record.get("tags")).split()),
        "description": _text(record.get("description")),
        "source": "flickr-api",
    }, None
