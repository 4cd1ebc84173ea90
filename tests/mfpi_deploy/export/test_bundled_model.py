"""The bundled model exported as users get it (dynamo, fp16): fp32 parity and the fp16 gate on real tiles.

Small gate tiles keep it to well under a minute on 2 cores, so it runs in CI.
"""

from __future__ import annotations

import json

from mfpi_deploy.export.api import ExportOptions, export_model


def test_bundled_model_parity_and_fp16_gate_on_real_tiles(tmp_path):
    out = export_model(
        "default",
        tmp_path / "engine",
        ExportOptions(fp16=True, tiles=(384,), gate_tile=64, gate_count=2, threads=2),
        log=lambda m: None,
    )
    acc = json.loads((out / "manifest.json").read_text())["accuracy"]
    assert acc["calibration"]["real_tiles"] == 2  # the real images shipped with the package
    assert acc["onnx_parity"]["max_abs_diff"] <= 1 and acc["onnx_parity"]["share_differing"] < 1e-3
    assert acc["fp16"]["min_psnr_db"] >= 45 and len(acc["fp16"]["psnr_db_real"]) == 11
