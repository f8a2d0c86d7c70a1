"""The flickr.photos.search client (the real flickrapi against the loopback API): retries of 429s, 5xx, Flickr's
"service unavailable" and malformed bodies; refused credentials; the key never in logs or errors."""

from __future__ import annotations

import logging

import pytest

from graft_hf.collect.flickr import (
    FlickrAuthError,
    FlickrClient,
    FlickrUnavailableError,
    credentials_from_env,
    photo_row,
)
from graft_hf.collect.licenses import DEFAULT_LICENSE_IDS
from tests.collect.conftest import CREDENTIALS
from tests.helpers.flickr_server import API_KEY, API_SECRET

PARAMS = {"bbox": "-99.2,47.0,-99.1,47.05", "min_taken_date": "2015-01-01 00:00:00", "has_geo": 1}


def _client(flickr, key=API_KEY, secret=API_SECRET, **kwargs) -> FlickrClient:
    values = dict(requests_per_second=1000.0, max_retries=4, backoff_seconds=0.0)
    return FlickrClient(key, secret, flickr.endpoint, **{**values, **kwargs})


def test_paging_and_the_response_format(flickr):
    with _client(flickr) as client:
        first = client.search(PARAMS, page=1, per_page=500)
    assert first.total == 2000 and first.pages == 8 and len(first.photos) == 200  # geo: 250 a page, cap 200
    record = first.photos[0]
    assert isinstance(record["latitude"], str) and record["description"].keys() == {"_content"}
    row, reason = photo_row(record, frozenset(DEFAULT_LICENSE_IDS))
    assert reason is None and row["page_url"] == f"https://www.flickr.com/photos/{record['owner']}/{record['id']}"
    assert row["tags"] == ", ".join(record["tags"].split()) and row["time"] == record["datetaken"].replace(" ", "T")


def test_transient_failures_are_retried_and_counted(flickr, caplog):
    flickr.faults = ["429", "500", "105", "malformed"]
    with caplog.at_level(logging.WARNING), _client(flickr) as client:
        page = client.search(PARAMS, page=1, per_page=50)
    assert len(page.photos) == 50 and client.calls == 5
    assert client.retries == {"http_429": 1, "http_5xx": 1, "flickr_105": 1, "malformed_response": 1}
    flickr.faults = ["500"] * 3
    with pytest.raises(FlickrUnavailableError, match="after 2 retries"), _client(flickr, max_retries=2) as client:
        client.search(PARAMS, page=1, per_page=50)


def test_refused_credentials_and_the_key_never_leaks(flickr, caplog):
    import flickrapi

    with caplog.at_level(logging.DEBUG):  # without the guard, requests_oauthlib logs the signed header at DEBUG
        raw = flickrapi.FlickrAPI(API_KEY, API_SECRET, format="parsed-json", store_token=False)
        raw.REST_URL = flickr.endpoint
        raw.photos.search(**PARAMS, per_page=1)
    assert API_KEY in caplog.text, "the test must be able to see a leak"
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(FlickrAuthError, match="FLICKR_API_KEY") as wrong_key, _client(flickr, key="nope-key") as c:
            c.search(PARAMS, page=1, per_page=10)
        with (
            pytest.raises(FlickrAuthError, match="Invalid signature") as wrong_secret,
            _client(flickr, secret="x") as c,
        ):
            c.search(PARAMS, page=1, per_page=10)
        flickr.faults = ["429", "500"]  # failures log warnings too
        with _client(flickr) as client:
            client.search(PARAMS, page=1, per_page=10)
            text = repr(client) + str(wrong_key.value) + str(wrong_secret.value)
    assert "retry" in caplog.text
    for secret in (API_KEY, API_SECRET, "nope-key"):
        assert secret not in caplog.text and secret not in text
    assert logging.getLogger("requests_oauthlib").level == logging.NOTSET  # the guard restored the loggers


def test_credentials_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    monkeypatch.setenv("FLICKR_API_SECRET", "s")
    with pytest.raises(FlickrAuthError, match="FLICKR_API_KEY not set.*yfcc"):
        credentials_from_env()
    monkeypatch.setenv("FLICKR_API_KEY", CREDENTIALS[0])
    assert credentials_from_env() == (CREDENTIALS[0], "s")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"latitude": "abc"}, "malformed_record"),
        ({"latitude": 0, "longitude": 0}, "no_geotag"),
        ({"media": "video"}, "video"),
        ({"license": "0"}, "license_not_allowed"),
        ({"datetakenunknown": "1"}, "date_taken_unknown"),
        ({"url_z": None}, "no_image_url"),
        ({"datetaken": "sometime"}, "malformed_record"),
    ],
)
def test_unusable_records_are_skipped_with_a_reason(change, reason):
    record = {"id": "5", "owner": "1@N01", "latitude": "47.0", "longitude": "-99.1", "accuracy": "16", "license": "4",
              "datetaken": "2016-01-01 10:00:00", "datetakenunknown": "0", "media": "photo", "url_z": "http://x/5.jpg"}  # fmt: skip
    assert photo_row(record, frozenset(DEFAULT_LICENSE_IDS))[0]["url"] == "http://x/5.jpg"
    assert photo_row({**record, **change}, frozenset(DEFAULT_LICENSE_IDS)) == (None, reason)
