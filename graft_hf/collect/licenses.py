"""Flickr's photo licences: numeric ids (``flickr.photos.licenses.getInfo``), names, URLs, and which allow
redistribution.

The photo table stores a licence as a short SPDX-style id (``"CC-BY-2.0"``) plus its URL, whichever source the
photo came from: the Flickr API reports the numeric id, YFCC100M the licence URL.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_LICENSE_IDS",
    "FLICKR_LICENSES",
    "NON_COMMERCIAL_LICENSE_IDS",
    "FlickrLicense",
    "license_from_url",
]


@dataclass(frozen=True)
class FlickrLicense:
    """One Flickr licence.

    Attributes:
        flickr_id: Flickr's numeric licence id.
        name: Short id stored in the photo table (SPDX identifier where one exists).
        url: The licence's URL as Flickr gives it.
        redistributable: Whether photos under it may be redistributed (in pair shards on the Hub) and used
            commercially: CC BY, BY-SA, BY-ND, CC0 and the Public Domain Mark.
    """

    flickr_id: int
    name: str
    url: str
    redistributable: bool


#: Flickr's licences by id (``flickr.photos.licenses.getInfo``; ids 11-16 are the CC 4.0 licences added in 2024).
FLICKR_LICENSES: dict[int, FlickrLicense] = {
    lic.flickr_id: lic
    for lic in (
        FlickrLicense(0, "all-rights-reserved", "", False),
        FlickrLicense(1, "CC-BY-NC-SA-2.0", "https://creativecommons.org/licenses/by-nc-sa/2.0/", False),
        FlickrLicense(2, "CC-BY-NC-2.0", "https://creativecommons.org/licenses/by-nc/2.0/", False),
        FlickrLicense(3, "CC-BY-NC-ND-2.0", "https://creativecommons.org/licenses/by-nc-nd/2.0/", False),
        FlickrLicense(4, "CC-BY-2.0", "https://creativecommons.org/licenses/by/2.0/", True),
        FlickrLicense(5, "CC-BY-SA-2.0", "https://creativecommons.org/licenses/by-sa/2.0/", True),
        FlickrLicense(6, "CC-BY-ND-2.0", "https://creativecommons.org/licenses/by-nd/2.0/", True),
        FlickrLicense(7, "no-known-copyright-restrictions", "https://www.flickr.com/commons/usage/", False),
        FlickrLicense(8, "us-government-work", "http://www.usa.gov/copyright.shtml", False),
        FlickrLicense(9, "CC0-1.0", "https://creativecommons.org/publicdomain/zero/1.0/", True),
        FlickrLicense(10, "PDM-1.0", "https://creativecommons.org/publicdomain/mark/1.0/", True),
        FlickrLicense(11, "CC-BY-4.0", "https://creativecommons.org/licenses/by/4.0/", True),
        FlickrLicense(12, "CC-BY-SA-4.0", "https://creativecommons.org/licenses/by-sa/4.0/", True),
        FlickrLicense(13, "CC-BY-ND-4.0", "https://creativecommons.org/licenses/by-nd/4.0/", True),
        FlickrLicense(14, "CC-BY-NC-4.0", "https://creativecommons.org/licenses/by-nc/4.0/", False),
        FlickrLicense(15, "CC-BY-NC-SA-4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/", False),
        FlickrLicense(16, "CC-BY-NC-ND-4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/", False),
    )
}

#: Licences collected by default: the ones that allow redistribution (Creative Commons and public domain).
DEFAULT_LICENSE_IDS: tuple[int, ...] = tuple(i for i, lic in FLICKR_LICENSES.items() if lic.redistributable)

#: The Creative Commons non-commercial licences, added by ``non_commercial=True``.
NON_COMMERCIAL_LICENSE_IDS: tuple[int, ...] = (1, 2, 3, 14, 15, 16)


def _url_key(url: str) -> str:
    """``creativecommons.org/licenses/by/2.0`` from any spelling of a licence URL (scheme, ``www.``, slash)."""
    key = url.strip().lower().split("://", 1)[-1].removeprefix("www.")
    return key.rstrip("/")


_BY_URL = {_url_key(lic.url): lic for lic in FLICKR_LICENSES.values() if lic.url}


def license_from_url(url: str) -> FlickrLicense | None:
    """The Flickr licence whose URL this is (as YFCC100M gives it, e.g. ``http://creativecommons.org/licenses/by/2.0/``).

    Args:
        url: A licence URL.

    Returns:
        The licence, or ``None`` when the URL is not one of Flickr's.
    """
    return _BY_URL.get(_url_key(url)) if url else None
