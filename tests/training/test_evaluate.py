from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from mfpi_deploy.checkpoint import ModelCard, save_checkpoint
from mfpi_deploy.degrade import degrade_uint8, upsample_bicubic
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.models import create_model
from mfpi_deploy.tiling import Box
from training.eval_cli import eval_main
from training.evaluate import evaluate, write_report
from training.metrics import stack_metrics
from training.stack import open_stack


@pytest.fixture
def tiny_ckpt(tmp_path):
    model = create_model("mfpinet", in_channels=3, planes=5, width=4)
    card = ModelCard("mfpinet", {"in_channels": 3, "planes": 5, "width": 4}, planes_um=[-5.4, -2.7, 0.0, 2.7, 5.4])
    return save_checkpoint(model, card, tmp_path / "ckpt")


def test_eval_predicts_exactly_what_mfpi_run_writes(tiny_ckpt, sim_path, tmp_path):
    """The model's stack in mfpi-eval comes from the tiling and backend code mfpi-run ships."""
    import tifffile

    from mfpi_deploy.cli.run import main as run_main
    from mfpi_deploy.output import zarr_stack

    report, stacks = evaluate(
        tiny_ckpt, [str(sim_path)], region="0:1.0,0.5:1.0", focus="middle", backend="torch", log=lambda m: None
    )
    slide = tmp_path / "input.tif"
    tifffile.imwrite(slide, stacks["input"][0], photometric="rgb")
    out = tmp_path / "run.ome.zarr"
    res = CliRunner().invoke(
        run_main,
        [
            str(slide),
            "-o",
            str(out),
            "--engine",
            str(tiny_ckpt),
            "--backend",
            "torch",
            "--quiet",
            "--pixel-size",
            "0.5",
        ],
    )
    assert res.exit_code == 0, res.output
    written = np.moveaxis(zarr_stack.open_level(out, 0)[:], 0, -1)  # (Z, Y, X, C)
    assert written.shape == stacks["model"].shape == (5, 192, 96, 3)
    np.testing.assert_array_equal(written, stacks["model"])


def test_eval_of_an_exported_engine_on_ort_cpu_matches_torch(tiny_ckpt, sim_path, tmp_path):
    from mfpi_deploy.export.api import ExportOptions, export_model

    engine = export_model(
        tiny_ckpt,
        tmp_path / "engine",
        ExportOptions(tiles=(64,), batches=(1,), threads=1, gate_tile=32, gate_count=1, exporter="torchscript"),
        log=lambda m: None,
    )
    kw = dict(region="0:96,0:96", focus="middle", log=lambda m: None)
    ort, ort_stacks = evaluate(engine, [str(sim_path)], backend="ort-cpu", **kw)
    ref, ref_stacks = evaluate(tiny_ckpt, [str(sim_path)], backend="torch", **kw)
    diff = np.abs(ort_stacks["model"].astype(int) - ref_stacks["model"].astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert [m.psnr for m in ort.methods["bicubic"].planes] == [m.psnr for m in ref.methods["bicubic"].planes]


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
    assert len(lines) == 2 + 5 + 2 + 1 and "+0 (input)" in table and "inf" in lines[4]
    assert lines[-1].startswith("| seconds for this stack | ") and report.seconds["model"] > 0
    paths = write_report(report, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert data["methods"]["in-focus copy"]["planes"][2]["psnr"] == "inf"
    assert len(data["methods"]["model"]["planes"]) == 5
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    below = [
        i
        for i, (m, b) in enumerate(zip(report.methods["model"].planes, report.methods["bicubic"].planes))
        if m.psnr < b.psnr
    ]
    assert (f"BELOW bicubic on {len(below)} of 5" if below else "above bicubic on every plane") in report.verdict()


def test_eval_command_prints_table_and_one_line_errors(tiny_ckpt, sim_path, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(
        eval_main,
        [
            str(tiny_ckpt),
            "--data",
            str(sim_path),
            "--focus",
            "middle",
            "--region",
            "0:96,0:96",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "| mean |" in ok.output and (tmp_path / "o" / "table.md").is_file()
    assert "bicubic on" in ok.output  # the verdict line: above on every plane, or which planes are below
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    res = runner.invoke(eval_main, [str(tiny_ckpt), "--data", str(bad)])
    assert res.exit_code == 2
    err = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "bad.tif" in err[0] and "Traceback" not in res.output
    res = runner.invoke(eval_main, [str(tiny_ckpt), "--data", str(sim_path), "--planes", "3"])
    assert res.exit_code == 2 and "5 planes" in res.output
    (tmp_path / "a-file").write_text("x")  # --out under a file: refused before anything is evaluated
    res = runner.invoke(eval_main, [str(tiny_ckpt), "--data", str(sim_path), "--out", str(tmp_path / "a-file" / "ev")])
    assert res.exit_code == 2 and "cannot create that folder" in res.output and "| mean |" not in res.output
    res = runner.invoke(eval_main, [str(tiny_ckpt), "--data", str(sim_path), "--region", "0:1.0,0.99:1.0"])
    assert res.exit_code == 2 and "it must be at least 32x32" in res.output and "Traceback" not in res.output
    blank = tmp_path / "blank.tif"
    tifffile.imwrite(blank, np.zeros((5, 64, 64, 3), np.uint8), photometric="rgb")
    res = runner.invoke(eval_main, [str(tiny_ckpt), "--data", str(blank)])
    assert res.exit_code == 2 and "every target plane is one flat value (0)" in res.output
    assert "| mean |" not in res.output and "Traceback" not in res.output


@pytest.fixture
def tiny_deepz(tmp_path):
    config = {"in_channels": 4, "width": 4, "scale": 2}
    card = ModelCard("deepz", config, planes_um=[-5.4, -2.7, 0.0, 2.7, 5.4])
    return save_checkpoint(create_model("deepz", **config), card, tmp_path / "deepz")


def test_mfpinet_and_deepz_side_by_side_and_deepz_through_mfpi_run(tiny_ckpt, tiny_deepz, sim_path, tmp_path):
    """Table II on the user's data: both models, bicubic and the in-focus copy in one table and plot;
    the Deep-Z stack is what `mfpi-run` writes with that model (one pass per plane, same layout)."""
    import tifffile

    from mfpi_deploy.cli.run import main as run_main
    from mfpi_deploy.output import zarr_stack

    kw = dict(region="0:1.0,0.5:1.0", focus="middle", backend="torch", log=lambda m: None)
    report, stacks = evaluate([tiny_ckpt, tiny_deepz], [str(sim_path)], **kw)
    assert list(report.methods) == ["MFPINet", "Deep-Z", "bicubic", "in-focus copy"]
    assert report.sources == {"MFPINet": str(tiny_ckpt), "Deep-Z": str(tiny_deepz)}
    assert set(report.seconds) == {"MFPINet", "Deep-Z"} and all(v > 0 for v in report.seconds.values())
    alone, alone_stacks = evaluate(tiny_deepz, [str(sim_path)], **kw)
    np.testing.assert_array_equal(stacks["Deep-Z"], alone_stacks["model"])
    assert [m.psnr for m in report.methods["Deep-Z"].planes] == [m.psnr for m in alone.methods["model"].planes]
    assert "MFPINet " in report.verdict() and "; Deep-Z " in report.verdict()
    head = report.table().splitlines()[0]
    assert "MFPINet PSNR" in head and "Deep-Z PSNR" in head and "bicubic PSNR" in head
    paths = write_report(report, tmp_path / "side")
    assert set(json.loads(paths["json"].read_text())["methods"]) == set(report.methods)

    slide = tmp_path / "input.tif"
    tifffile.imwrite(slide, stacks["input"][0], photometric="rgb")
    out = tmp_path / "deepz.ome.zarr"
    args = [str(slide), "-o", str(out), "--engine", str(tiny_deepz), "--backend", "torch", "--quiet"]
    res = CliRunner().invoke(run_main, [*args, "--pixel-size", "0.5"])
    assert res.exit_code == 0, res.output
    written = np.moveaxis(zarr_stack.open_level(out, 0)[:], 0, -1)  # (Z, Y, X, C)
    assert written.shape == (5, 192, 96, 3)
    np.testing.assert_array_equal(written, stacks["Deep-Z"])


@pytest.mark.parametrize(
    ("bad", "says"), [({"threads": -1}, "--threads must be 0"), ({"halo": 1000}, "--halo must be")]
)
def test_evaluate_refuses_unusable_options_before_reading(tmp_path, bad, says):
    with pytest.raises(MfpiError, match=says):  # the data path does not exist: nothing was read
        evaluate("default", [str(tmp_path / "no-such-stack.tif")], **bad)


def test_model_labels_name_the_source_only_where_architectures_clash():
    from training.evaluate import model_labels

    assert model_labels([("MFPINet", "a.pth")]) == {("MFPINet", "a.pth"): "model"}
    two = [("MFPINet", "a.pth"), ("Deep-Z", "z")]
    assert model_labels(two) == {("MFPINet", "a.pth"): "MFPINet", ("Deep-Z", "z"): "Deep-Z"}
    runs = [("MFPINet", "runs/a/best.pth"), ("MFPINet", "runs/b/best.pth"), ("Deep-Z", "z")]
    assert list(model_labels(runs).values()) == ["MFPINet (runs/a/best.pth)", "MFPINet (runs/b/best.pth)", "Deep-Z"]


def test_two_checkpoints_of_one_architecture_and_a_grey_model_on_rgb(sim_path, tmp_path):
    """Two MFPINets are told apart by their sources (a repeated source is evaluated once), and a grey
    model on an RGB stack is scored on its luma, which the log says."""
    config = {"in_channels": 1, "planes": 5, "width": 4}
    card = ModelCard("mfpinet", config, planes_um=[-5.4, -2.7, 0.0, 2.7, 5.4])
    a = save_checkpoint(create_model("mfpinet", **config), card, tmp_path / "a" / "best")
    b = save_checkpoint(create_model("mfpinet", **config), card, tmp_path / "b" / "best")
    logs: list[str] = []
    kw = dict(region="0:1.0,0.5:1.0", focus="middle", backend="torch", log=logs.append)
    report, stacks = evaluate([a, b, a], [str(sim_path)], **kw)
    assert list(report.methods) == [f"MFPINet ({a})", f"MFPINet ({b})", "bicubic", "in-focus copy"]
    assert report.sources == {f"MFPINet ({a})": str(a), f"MFPINet ({b})": str(b)}
    assert not np.array_equal(stacks[f"MFPINet ({a})"], stacks[f"MFPINet ({b})"])  # two random inits
    assert stacks["target"].shape[-1] == 1
    assert sum("RGB stack, grey model: evaluating its luma" in line for line in logs) == 1
