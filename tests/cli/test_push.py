"""`graft push`: a dry run stages everything without network; errors name the flags; a push of a `graft train` output
to a local test Hub fills the card's recipe from its train config.
"""

from __future__ import annotations

import json

import yaml

from graft_hf.hub import check_model_card
from graft_hf.testing import tiny_graft_model
from graft_hf_cli import main
from tests.helpers.hub_inputs import EVAL, MODEL_NAME, saved_model
from tests.helpers.hub_server import HUB_TOKEN, USER, free_port


def test_push_dry_run_stages_everything_without_network(tmp_path, capsys):
    model = tiny_graft_model()
    model.save_pretrained(tmp_path / "model")  # no processor, no card: both are added in the staging folder
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(json.dumps(EVAL))
    code = main(["push", str(tmp_path / "model"), "--namespace", "me", "--eval", str(eval_json), "--dry-run"])
    assert code == 0
    out = capsys.readouterr().out
    staged = {line.split("\t")[0] for line in out.splitlines() if "\t" in line}
    assert {"README.md", "processor_config.json", "model.safetensors", "modeling_graft.py"} <= staged
    assert "would be pushed to me/graft-naip-vit-w32-d2-p8" in out
    assert "not uploaded" not in out
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "config.json",
        "configuration_graft.py",
        "model.safetensors",
        "modeling_graft.py",
    ]


def test_cli_push_names_the_flags(tmp_path, capsys):
    tiny_graft_model().save_pretrained(tmp_path)
    (tmp_path / "README.md").write_text("# my notes\n")
    assert main(["push", str(tmp_path), "me/graft-naip-vit-w32-d2-p8", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "graft push: error: " in err and "--eval / --license / --train-config" in err and "--card FILE" in err
    assert main(["push", str(tmp_path), "me/graft-sentinel2-vitb16", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "expected 'graft-naip-vit-w32-d2-p8'" in err and "pass --allow-any-name" in err
    assert main(["push", str(tmp_path), "me/graft-sentinel2-vitb16", "--dataset"]) == 1
    assert "no parquet shards" in capsys.readouterr().err


def test_cli_push_errors_name_the_flags(online, capsys):
    from graft_hf_cli import main

    folder = saved_model(online / "model")
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main(["push", str(folder), MODEL_NAME, "--endpoint", endpoint, "--token", HUB_TOKEN]) == 1
    err = capsys.readouterr().err
    assert "graft push: error: " in err and "cannot reach the Hub" in err and "pass --endpoint" in err
    assert main(["push", str(folder), MODEL_NAME, "--endpoint", endpoint]) == 1
    err = capsys.readouterr().err
    assert "no Hugging Face token" in err and "pass --token" in err
    assert main(["push", str(folder), "me/graft-sentinel2-vitb16", "--endpoint", endpoint]) == 1
    assert "pass --allow-any-name" in capsys.readouterr().err


def test_cli_push_of_a_train_output_fills_the_recipe_from_train_config(hub_server, online):

    from graft_hf_cli import main

    run = online / "run"
    saved_model(run / "model")
    recipe = {"task": "image", "data": {"path": "graft-tester/pairs"}, "loss": {"temperature": 0.07}}
    (run / "train_config.yaml").write_text(yaml.safe_dump({**recipe, "train": {"epochs": 3}}))
    args = ["push", str(run / "model"), "--suffix", "trained", "--endpoint", hub_server.endpoint, "--token", HUB_TOKEN]
    assert main(args) == 0
    card = hub_server.files(f"{USER}/{MODEL_NAME}-trained")["README.md"].decode()
    assert check_model_card(card)["datasets"] == ["graft-tester/pairs"]
    assert "| epochs | 3 |" in card


def test_push_dry_run_lists_what_it_skips(tmp_path, capsys):
    import os

    tiny_graft_model().save_pretrained(tmp_path / "model")
    os.symlink("/etc/passwd", tmp_path / "model" / "passwd")
    code = main(["push", str(tmp_path / "model"), "--namespace", "me", "--dry-run"])
    assert code == 0
    out = capsys.readouterr().out
    assert "not uploaded (symbolic link (links are never followed)): passwd" in out
    assert "passwd\t" not in out
