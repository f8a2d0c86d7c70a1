"""`graft search`: a folder that holds no index, a bad `-k`, an empty query."""

from __future__ import annotations

from graft_hf_cli import main as graft_main


def test_search_errors(tmp_path, capsys):
    assert graft_main(["search", str(tmp_path), "-q", "x"]) == 1
    assert "not a saved EmbeddingIndex" in capsys.readouterr().err
    assert graft_main(["search", str(tmp_path), "-q", "x", "-k", "0"]) == 1
    assert "-k: must be positive, got 0" in capsys.readouterr().err
    assert graft_main(["search", str(tmp_path), "-q", "farmland", "-q", "  "]) == 1
    assert "--query: query 2 is empty; type the text to search for" in capsys.readouterr().err
