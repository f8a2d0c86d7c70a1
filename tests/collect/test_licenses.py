"""Flickr licences: the default set allows redistribution; YFCC100M licence URLs map to the same ids."""

from __future__ import annotations

from graft_hf.collect.config import CollectPhotosConfig
from graft_hf.collect.licenses import DEFAULT_LICENSE_IDS, FLICKR_LICENSES, license_from_url


def test_default_licences_are_the_redistributable_ones():
    assert CollectPhotosConfig(output="o", bbox=(0, 0, 1, 1)).licenses == DEFAULT_LICENSE_IDS
    assert set(DEFAULT_LICENSE_IDS) >= {4, 5, 6, 9, 10}  # CC BY, BY-SA, BY-ND, CC0, Public Domain Mark
    assert not any("NC" in FLICKR_LICENSES[i].name for i in DEFAULT_LICENSE_IDS)


def test_licence_urls_in_any_spelling():
    assert license_from_url("http://creativecommons.org/licenses/by-nc/2.0/").flickr_id == 2
    assert license_from_url("https://www.creativecommons.org/licenses/by/2.0").name == "CC-BY-2.0"
    assert license_from_url("http://example.com/mine") is None and license_from_url("") is None
