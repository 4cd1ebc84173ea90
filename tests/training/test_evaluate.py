from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mfpi_deploy.checkpoint import ModelCard, save_checkpoint
from mfpi_deploy.models import create_model
from training.degrade import degrade_uint8, upsample_bicubic
from training.evaluate import evaluate, predict, write_report
from training.eval_cli import eval_main
from training.metrics import stack_metrics
from training.stack import open_stack
from mfpi_deploy.tiling import Box


@pytest.fixture
def tiny_ckpt(tmp_path):
    model = create_model("mfpinet", in_channels=3, planes=5, width=4)
    card = ModelCard("mfpinet", {"in_channels": 3, "planes": 5, "width": 4}, planes_um=[-5.4, -2.7, 0.0, 2.7, 5.4])
    return save_checkpoint(model, card, tmp_path / "ckpt")


def test_tiled_prediction_matches_whole_image():
    torch.manual_seed(0)
    model = create_model("mfpinet", in_channels=1, planes=3, width=4).eval()
    img = np.random.default_rng(0).integers(0, 255, (64, 48, 1)).astype(np.uint8)
    tiled = predict(model, img, tile=16, margin=40)
    with torch.no_grad():
        whole = model(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)[0]
    whole = torch.round(whole * 255).to(torch.uint8).numpy().reshape(3, 1, 128, 96).transpose(0, 2, 3, 1)
    assert tiled.shape == (3, 128, 96, 1)
    one_tile = predict(model, img, tile=64, margin=0)
    np.testing.assert_array_equal(one_tile, whole)
    # Same mirrored context, cut into 16 px tiles with 40 px margins: seams must not show.
    one = predict(model, img, tile=64, margin=40).astype(int)
    diff = np.abs(tiled.astype(int) - one)
    assert diff.mean() < 0.1 and diff.max() <= 2


def test_evaluate_scores_model_and_baselines(tiny_ckpt, sim_path, tmp_path):
    report, stacks = evaluate(tiny_ckpt, [str(sim_path)], region="0:1.0,0.5:1.0", focus="middle", log=lambda m: None)
    assert report.offsets == [-5.4, -2.7, 0.0, 2.7, 5.4] and report.centre_index == 2
    assert report.region == [0, 192, 96, 192]
    target = open_stack(sim_path).read(range(5), Box(0, 96, 192, 192))
    np.testing.assert_array_equal(stacks["target"], target)
    inp = degrade_uint8(target[2])
    bicubic = stack_metrics(np.repeat(upsample_bicubic(inp)[None], 5, axis=0), target)
    assert [m.psnr for m in report.methods["bicubic"].planes] == pytest.approx([m.psnr for m in bicubic])
    copy = report.methods["in-focus copy"]
    assert math.isinf(copy.planes[2].psnr) and copy.planes[2].ssim == pytest.approx(1.0)
    assert all(math.isfinite(m.psnr) for i, m in enumerate(copy.planes) if i != 2)
    table = report.table()
    lines = table.strip().splitlines()
    assert len(lines) == 2 + 5 + 2 and "+0 (input)" in table and "inf" in lines[4]
    paths = write_report(report, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert data["methods"]["in-focus copy"]["planes"][2]["psnr"] == "inf"
    assert len(data["methods"]["model"]["planes"]) == 5
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_command_prints_table_and_one_line_errors(tiny_ckpt, sim_path, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(eval_main, [str(tiny_ckpt), "--data", str(sim_path), "--focus", "middle", "--region", "0:96,0:96",
                                   "--out", str(tmp_path / "o")])
    assert ok.exit_code == 0, ok.output
    assert "| mean |" in ok.output and (tmp_path / "o" / "table.md").is_file()
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    res = runner.invoke(eval_main, [str(tiny_ckpt), "--data", str(bad)])
    assert res.exit_code == 2
    err = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "bad.tif" in err[0] and "Traceback" not in res.output
    res = runner.invoke(eval_main, [str(tiny_ckpt), "--data", str(sim_path), "--planes", "3"])
    assert res.exit_code == 2 and "5 planes" in res.output
