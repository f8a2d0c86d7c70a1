"""The served demo through its API (`gradio_client`): 20 concurrent queries, an upload, limits as errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

gradio_client = pytest.importorskip("gradio_client")

QUERIES = [
    "farmland", "a river", "a highway", "dense forest", "a lake", "industrial buildings", "pasture", "vineyards",
    "houses", "a bridge", "wetland", "an airport", "a parking lot", "crops in rows", "a harbour", "bare soil",
    "a golf course", "orchards", "a quarry", "a railway",
]  # fmt: skip


@pytest.fixture(scope="module")
def client(served_demo):
    return gradio_client.Client(served_demo, verbose=False)


def test_twenty_concurrent_queries_all_succeed(client):
    ks = [1 + i % 12 for i in range(len(QUERIES))]

    def ask(query_k: tuple[str, int]):
        query, k = query_k
        return client.predict(query, k, api_name="/retrieve")

    with ThreadPoolExecutor(max_workers=len(QUERIES)) as pool:
        answers = list(pool.map(ask, zip(QUERIES, ks)))
    assert len(answers) == 20
    for (query, k), (gallery, map_path, summary) in zip(zip(QUERIES, ks), answers):
        assert len(gallery) == k, query
        assert all("score" in item["caption"] and ", -9" in item["caption"] for item in gallery)
        assert map_path.endswith(".png") and f"{k} of 30 tiles" in summary and query in summary


def test_an_upload_through_the_api(client, naip_crop):
    overlays, summary = client.predict(
        gradio_client.handle_file(str(naip_crop)), "farmland, road", True, api_name="/segment"
    )
    assert [item["caption"].split(":")[0] for item in overlays] == ["all queries", "farmland", "road"]
    assert "96 x 96 px" in summary


def test_limits_reach_api_callers_as_errors(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="max_query_chars=60"):
        client.predict("x" * 100, 3, api_name="/retrieve")
    with pytest.raises(AppError, match="maximum value 12"):  # the slider's own range check (k_max)
        client.predict("farmland", 20, api_name="/retrieve")
    assert len(client.predict("farmland", 2, api_name="/retrieve")[0]) == 2  # the server is still fine
