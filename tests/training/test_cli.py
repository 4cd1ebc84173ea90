from __future__ import annotations

import json

from click.testing import CliRunner

from training.cli import main, train_main


def test_train_command_runs_and_resumes(sim_path, tmp_path):
    out = tmp_path / "run"
    args = [
        "--data",
        str(sim_path),
        "--out",
        str(out),
        "--planes",
        "5",
        "--focus",
        "middle",
        "--width",
        "4",
        "--disc-width",
        "4",
        "--patch",
        "64",
        "--batch",
        "2",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--block",
        "96",
        "--val-fraction",
        "0.25",
        "--val-patches",
        "2",
        "--validations",
        "1",
    ]
    res = CliRunner().invoke(train_main, args)
    assert res.exit_code == 0, res.output
    assert "done: 2 steps (1 epoch(s) + 0)" in res.output
    card = json.loads((out / "best" / "card.json").read_text())
    assert "--patch 64" in card["provenance"]["command"] and card["provenance"]["epochs"] == 1
    res = CliRunner().invoke(main, ["train", "--out", str(out), "--resume", "--epochs", "2"])
    assert res.exit_code != 0 and "add --extend" in res.output  # resume keeps the plan unless told to extend it
    res = CliRunner().invoke(main, ["train", "--out", str(out), "--resume", "--data", "other.tif", "--width", "64"])
    assert res.exit_code == 2 and "not --data, --width" in res.output  # was ignored without a word
    res = CliRunner().invoke(main, ["train", "--out", str(out), "--resume", "--extend", "--epochs", "2"])
    assert res.exit_code == 0, res.output
    assert "resumed" in res.output and "done: 4 steps (2 epoch(s) + 0)" in res.output
    assert len((out / "log.jsonl").read_text().splitlines()) == 2


def test_train_errors_are_one_line(tmp_path):
    bad = tmp_path / "trunc.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 20)
    for args in (
        ["--data", str(bad), "--out", str(tmp_path / "r1")],
        ["--data", str(tmp_path / "missing.tif"), "--out", str(tmp_path / "r2")],
        ["--out", str(tmp_path / "r3")],
        ["--out", str(tmp_path / "r4"), "--resume"],
    ):
        res = CliRunner().invoke(train_main, args)
        lines = [line for line in res.output.splitlines() if line.strip()]
        assert res.exit_code == 2, (args, res.output)
        assert len(lines) == 1 and lines[0].startswith("error:"), res.output
