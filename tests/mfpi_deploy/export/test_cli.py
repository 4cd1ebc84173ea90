"""mfpi-export command: a working export, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from mfpi_deploy.cli.export import main
from tests.mfpi_deploy.export.engines import tiny_checkpoint

FAST = ["--exporter", "torchscript", "--tile", "32", "--threads", "1"]


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def _one_line_error(result, expected: str) -> None:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0], lines[0]


def test_cli_exports_fp32_and_fp16(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)
    out = tmp_path / "engines" / "tiny"
    result = _run(str(ckpt), "--out", str(out), "--fp16", *FAST)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert "onnx parity vs PyTorch" in result.stderr and "fp16 gate" in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["artifacts"]) == {"onnx", "onnx_fp16", "weights", "card"}
    assert manifest["engine"]["profiles"][0]["opt_tile"] == 32 and manifest["exporter"] == "torchscript"
    # the folder exists now: refused without --force, replaced with it
    _one_line_error(_run(str(ckpt), "--out", str(out), *FAST), "exists (pass --force")
    again = _run(str(ckpt), "--out", str(out), "--force", *FAST)
    assert again.exit_code == 0, again.output
    assert set(json.loads((out / "manifest.json").read_text())["artifacts"]) == {"onnx", "weights", "card"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]


def test_missing_checkpoint(tmp_path):
    _one_line_error(_run(str(tmp_path / "nope"), "--out", str(tmp_path / "e")), "no such checkpoint")


def test_corrupt_checkpoint(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)
    (ckpt / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    _one_line_error(_run(str(ckpt), "--out", str(tmp_path / "e")), "corrupt weights file")
    assert not (tmp_path / "e").exists()


def test_corrupt_pth(tmp_path):
    bad = tmp_path / "G.pth"
    bad.write_bytes(b"not a zip")
    _one_line_error(_run(str(bad), "--out", str(tmp_path / "e")), "G.pth: ")  # wording is the checkpoint module's


def test_unknown_architecture(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)
    card = json.loads((ckpt / "card.json").read_text())
    (ckpt / "card.json").write_text(json.dumps({**card, "architecture": "unet"}))
    _one_line_error(_run(str(ckpt), "--out", str(tmp_path / "e")), "unknown architecture 'unet'")


def test_discriminator_is_not_deployable(tmp_path):
    from mfpi_deploy.checkpoint import ModelCard, save_checkpoint
    from mfpi_deploy.models import create_model

    cfg = {"in_channels": 33, "width": 4}
    save_checkpoint(
        create_model("mfpinet_discriminator", **cfg),
        ModelCard(architecture="mfpinet_discriminator", config=cfg),
        tmp_path / "d",
    )
    _one_line_error(_run(str(tmp_path / "d"), "--out", str(tmp_path / "e")), "cannot be deployed")


@pytest.mark.parametrize(
    "tile, expected",
    [("100", "not a positive multiple of the network's stride 8 (use 96 or 104)"), ("0", "not a positive multiple")],
)
def test_tile_the_network_cannot_take(tmp_path, tile, expected):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)
    _one_line_error(_run(str(ckpt), "--out", str(tmp_path / "e"), "--tile", tile), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_trt_without_tensorrt_fails_fast(tmp_path):
    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)
    _one_line_error(_run(str(ckpt), "--out", str(tmp_path / "e"), "--trt"), "TensorRT is not installed")
    assert not (tmp_path / "e").exists()


def test_rebuild_needs_an_engine_folder(tmp_path):
    result = _run(str(tmp_path), "--rebuild")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_unsupported_opset(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)
    _one_line_error(_run(str(ckpt), "--out", str(tmp_path / "e"), "--opset", "9"), "opset 9 is not supported: use 18..")


def test_rebuild_without_tensorrt(mfpinet_engine):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    _one_line_error(_run(str(mfpinet_engine), "--rebuild"), "TensorRT is not installed")


def test_bad_batch(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)
    _one_line_error(_run(str(ckpt), "--out", str(tmp_path / "e"), "--batch", "0"), "batch sizes must be positive")


@pytest.mark.parametrize("side", [1, 20])
def test_a_calibration_image_too_small_for_a_tile_is_refused(tmp_path, side):
    """A 1x1 image crashed (percentiles of nothing) and a 20x20 one was skipped in silence, so the
    gate ran without the user's image while the manifest listed it."""
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.full((side, side), 7, np.uint16))
    result = _run(str(ckpt), "--out", str(tmp_path / "e"), "--calibration", str(small), *FAST)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], result.stderr
    assert f"{side}x{side} px is too small to calibrate on" in errors[0]
    assert not (tmp_path / "e").exists()


def test_cli_exports_int8_and_bf16_variants(tmp_path, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", width=4)
    out = tmp_path / "tiny"
    result = _run(str(ckpt), "--out", str(out), "--int8", "--bf16", "--int8-min-psnr", "40", *FAST)
    assert result.exit_code == 0, result.output
    assert "int8 gate: lowest plane PSNR" in result.stderr and "bf16 gate (" in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["artifacts"]) == {"onnx", "onnx_int8", "onnx_bf16", "weights", "card"}
    assert manifest["accuracy"]["int8"]["threshold_db"] == 40.0 and manifest["accuracy"]["bf16"]["threshold_db"] == 45.0
    from mfpi_deploy.export import int8

    monkeypatch.setattr(int8, "MAX_ROUNDS", 0)  # fail at once: no search
    failed = _run(str(ckpt), "--out", str(tmp_path / "e"), "--int8", "--int8-min-psnr", "300", *FAST)
    assert failed.exit_code == 2 and "Traceback" not in failed.output
    assert failed.stderr.strip().splitlines()[-1].startswith("error: int8 accuracy gate failed: lowest plane PSNR ")
    assert not (tmp_path / "e").exists()
