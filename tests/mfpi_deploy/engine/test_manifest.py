"""Manifest round trip, refusal of newer/malformed manifests, engine target mismatch."""

from __future__ import annotations

import json

import pytest

from mfpi_deploy.engine.manifest import EngineMismatchError, GpuTarget, Manifest, check_engine_target
from mfpi_deploy.errors import MfpiError

A100 = GpuTarget("NVIDIA A100-SXM4-40GB", "8.0", "10.9.0.34")


def test_round_trip_and_spec(mfpinet_engine, tmp_path):
    m = Manifest.read(mfpinet_engine)
    m.gpu = A100
    m.write(tmp_path)
    again = Manifest.read(tmp_path)
    assert again == m and again.gpu == A100
    spec = again.spec("fp16", limited=True)
    assert spec.profiles[0].max_tile == 64 and spec.precision == "fp16" and spec.planes == 11
    assert again.spec("fp32", limited=False).profiles[0].max_tile is None  # onnxruntime: any size


def test_missing_newer_and_malformed_manifests(tmp_path):
    with pytest.raises(MfpiError, match="no such engine folder"):
        Manifest.read(tmp_path / "nope")
    with pytest.raises(MfpiError, match="not an engine folder"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(MfpiError, match="unreadable manifest"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"manifest_version": 99}))
    with pytest.raises(MfpiError, match="newer than this tool"):
        Manifest.read(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"manifest_version": 1, "architecture": "mfpinet"}))
    with pytest.raises(MfpiError, match="malformed manifest"):
        Manifest.read(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("stride", 0, "engine stride must be a whole number of at least 1, got 0"),  # was a ZeroDivisionError
        ("planes_um", [0.0], "engine lists 1 plane offsets (planes_um) for 11 planes"),  # an IndexError after the run
        ("planes_um", ["x"] * 2, "engine planes_um must be numbers, got ['x', 'x']"),
        ("channels", 2, "engine channels must be 1 (grey) or 3 (RGB), got 2"),
        ("planes", "11", "engine planes must be a whole number of at least 1, got '11'"),
    ],
)
def test_an_engine_block_out_of_range_is_refused_when_read(mfpinet_engine, tmp_path, field, value, says):
    """A hand-edited manifest is refused at open, in one line naming the file, before any tile runs."""
    data = json.loads((mfpinet_engine / "manifest.json").read_text())
    data["engine"][field] = value
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(MfpiError) as err:
        Manifest.read(tmp_path)
    assert str(err.value) == f"{tmp_path / 'manifest.json'}: malformed manifest ({says})"


def test_same_target_is_accepted():
    check_engine_target(A100, GpuTarget(A100.name, A100.compute_capability, A100.tensorrt))


@pytest.mark.parametrize(
    "here, expected",
    [
        (
            GpuTarget("NVIDIA GeForce RTX 4090", "8.9", "10.9.0.34"),
            "built for GPU NVIDIA A100-SXM4-40GB (sm 8.0), this machine has NVIDIA GeForce RTX 4090 (sm 8.9)",
        ),
        (GpuTarget("NVIDIA A100-SXM4-40GB", "8.0", "11.0.0.1"), "TensorRT 10.9.0.34, this machine has 11.0.0.1"),
    ],
)
def test_other_gpu_or_tensorrt_is_refused_with_a_message(here, expected):
    with pytest.raises(EngineMismatchError) as err:
        check_engine_target(A100, here, folder="engines/x")
    msg = str(err.value)
    assert expected in msg and msg.startswith("engines/x: ") and "rebuild" in msg and "\n" not in msg


def test_engine_without_recorded_target_is_refused():
    with pytest.raises(EngineMismatchError, match="does not record the GPU"):
        check_engine_target(None, A100)


def test_gate_reason_per_precision_and_runtime(mfpinet_engine):
    m = Manifest.read(mfpinet_engine)
    assert m.gate_reason("fp32", "openvino") is None  # the reference
    assert m.gate_reason("fp16", "onnxruntime") is None  # fp16 blocks: measured with onnxruntime
    assert m.gate_reason("int8", "onnxruntime") is None
    m.accuracy["int8"]["runtimes"].pop("openvino", None)
    assert "int8 accuracy gate was not measured on openvino" in m.gate_reason("int8", "openvino")
    m.accuracy["int8"]["runtimes"]["onnxruntime"]["min_psnr_db"] = 40.0
    assert m.gate_reason("int8", "onnxruntime") == "its int8 accuracy gate did not pass on onnxruntime (40.0 dB)"
    del m.accuracy["int8"]
    assert m.gate_reason("int8", "onnxruntime") == "the manifest has no int8 accuracy figures"
