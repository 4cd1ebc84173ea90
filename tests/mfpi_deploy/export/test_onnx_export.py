"""fp32 ONNX export: graph shape and types, folder contents, parity with PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from mfpi_deploy.backends.torch_backend import TorchBackend
from mfpi_deploy.checkpoint import load_checkpoint
from mfpi_deploy.engine.manifest import MANIFEST_VERSION
from mfpi_deploy.export.calibration import real_tiles
from mfpi_deploy.fileio import file_sha256
from mfpi_deploy.models.uint8_io import Uint8DeepZ, Uint8MFPINet
from tests.mfpi_deploy.export.conftest import ort_session


def test_folder_holds_onnx_checkpoint_copy_and_manifest(mfpinet_engine):
    names = sorted(p.name for p in mfpinet_engine.iterdir())
    assert names == [
        "card.json",
        "manifest.json",
        "model.fp16.onnx",
        "model.int8.onnx",
        "model.onnx",
        "model.safetensors",
    ]
    m = json.loads((mfpinet_engine / "manifest.json").read_text())
    src_weights = mfpinet_engine.parent / "ckpt" / "model.safetensors"
    assert m["source"]["sha256"] == file_sha256(src_weights) == file_sha256(mfpinet_engine / "model.safetensors")
    assert m["source"]["card"]["config"]["width"] == 8 and m["source"]["kind"] == "checkpoint"
    assert m["artifacts"]["onnx"] == {
        "file": "model.onnx",
        "sha256": file_sha256(mfpinet_engine / "model.onnx"),
        "precision": "fp32",
        "opset": 20,
        "fp32_nodes": [],
        "hints": {},
    }
    assert m["artifacts"]["onnx_fp16"]["precision"] == "fp16"
    int8 = m["artifacts"]["onnx_int8"]
    assert (int8["precision"], int8["file"]) == ("int8", "model.int8.onnx")
    # bf16 is model.onnx run with OpenVINO's hint: no file of its own
    assert m["artifacts"]["onnx_bf16"] == {
        **m["artifacts"]["onnx"],
        "precision": "bf16",
        "hints": {"INFERENCE_PRECISION_HINT": "bf16"},
    }
    assert m["artifacts"]["weights"]["sha256"] == file_sha256(mfpinet_engine / "model.safetensors")
    assert m["artifacts"]["card"]["sha256"] == file_sha256(mfpinet_engine / "card.json")
    assert {"torch", "onnx", "onnxruntime", "onnxscript"} <= set(m["tools"]) and "tensorrt" not in m["tools"]
    assert m["tools"]["torch"] == torch.__version__
    engine = m["engine"]
    assert engine["profiles"] == [{"opt_tile": 64, "min_tile": 8, "max_tile": 64, "opt_batch": 2, "max_batch": 2}]
    assert m["exporter"] == "dynamo" and m["gpu"] is None and m["manifest_version"] == MANIFEST_VERSION
    assert tuple(engine[k] for k in ("architecture", "channels", "planes", "scale", "stride")) == (
        "mfpinet",
        1,
        11,
        2,
        8,
    )
    cal = m["accuracy"]["calibration"]
    assert cal["simulated_tiles"] == 2 and cal["tile_side"] == 64 and cal["simulator"] == "mfpi_deploy.synth"
    parity = m["accuracy"]["onnx_parity"]
    assert parity["max_abs_diff"] <= 1 and parity["share_differing"] < 1e-3 and parity["values"] > 0
    # the checkpoint copy is a working checkpoint
    assert load_checkpoint(mfpinet_engine).card.config["width"] == 8
    # no temporary folder left next to the result
    assert sorted(p.name for p in mfpinet_engine.parent.iterdir()) == ["ckpt", "engine"]


def test_onnx_graph_is_one_checked_file_with_uint8_io_and_dynamic_shapes(mfpinet_engine):
    model = onnx.load(str(mfpinet_engine / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [20]
    assert all(not init.external_data for init in model.graph.initializer)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("tiles", "planes")
    assert inp.type.tensor_type.elem_type == out.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, True, True, False] and dims[3].dim_value == 1
    assert len(out.type.tensor_type.shape.dim) == 5


@pytest.mark.parametrize("shape", [(1, 8, 8, 1), (3, 24, 56, 1), (2, 64, 64, 1), (1, 96, 40, 1)])
def test_onnxruntime_matches_pytorch_up_to_rounding(mfpinet_engine, shape):
    sess = ort_session(mfpinet_engine / "model.onnx")
    module = Uint8MFPINet(load_checkpoint(mfpinet_engine).model)
    tiles = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    got = sess.run(None, {"tiles": tiles})[0]
    with torch.inference_mode():
        want = module(torch.from_numpy(tiles)).numpy()
    assert got.shape == (shape[0], 11, 2 * shape[1], 2 * shape[2], 1) and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - want)
    assert diff.max() <= 1 and np.count_nonzero(diff) / diff.size < 1e-3


def test_onnxruntime_matches_pytorch_on_real_tiles(mfpinet_engine, real_stack_path):
    tiles = real_tiles([real_stack_path], 1, 64, 3)
    assert tiles.shape == (3, 64, 64, 1) and tiles.std() > 5
    got = ort_session(mfpinet_engine / "model.onnx").run(None, {"tiles": tiles})[0]
    with torch.inference_mode():
        want = Uint8MFPINet(load_checkpoint(mfpinet_engine).model)(torch.from_numpy(tiles)).numpy()
    assert np.abs(got.astype(int) - want).max() <= 1


@pytest.mark.parametrize("name", ["model.onnx", "model.int8.onnx"])
def test_output_layout_changes_after_the_cast_to_uint8(mfpinet_engine, name):
    """The graph's last transpose moves uint8 planes, not float ones: a quarter of the bytes, and
    runtimes need no float copy of the whole output stack (OpenVINO: 110 MB less per 608 px tile)."""
    model = onnx.load(str(mfpinet_engine / name))
    producer = {out: node for node in model.graph.node for out in node.output}
    last = producer[model.graph.output[0].name]
    assert last.op_type == "Transpose"
    cast = producer[last.input[0]]
    assert cast.op_type == "Cast" and onnx.helper.get_attribute_value(cast.attribute[0]) == onnx.TensorProto.UINT8


def test_deepz_exports_with_dpm_input(deepz_engine):
    model = onnx.load(str(deepz_engine / "model.onnx"))
    assert [i.name for i in model.graph.input] == ["tiles", "dpm"]
    assert model.graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    m = json.loads((deepz_engine / "manifest.json").read_text())
    assert tuple(m["engine"][k] for k in ("architecture", "channels", "planes", "stride")) == ("deepz", 3, 1, 8)
    tiles = np.random.default_rng(3).integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    dpm = np.array([-2.5, 0.0, 2.5], np.float32)
    got = ort_session(deepz_engine / "model.onnx").run(None, {"tiles": tiles, "dpm": dpm})[0]
    with torch.inference_mode():
        want = Uint8DeepZ(load_checkpoint(deepz_engine).model)(torch.from_numpy(tiles), torch.from_numpy(dpm)).numpy()
    assert got.shape == (3, 64, 96, 3) and np.abs(got.astype(int) - want).max() <= 1
    assert not np.array_equal(got[0], got[2])  # the DPM reaches the network
    with TorchBackend(load_checkpoint(deepz_engine)) as backend:
        assert np.abs(backend.run(tiles, dpm)[:, 0].astype(int) - got).max() <= 1


def test_residual_form_exports_with_in_graph_bicubic_and_matches_torch(tmp_path):
    """The residual form's bicubic upsampling is inside the graph: onnxruntime (fp32 and fp16) matches torch."""
    from mfpi_deploy.backends.torch_backend import TorchBackend
    from mfpi_deploy.checkpoint import ModelCard, save_checkpoint
    from mfpi_deploy.export.api import export_model
    from mfpi_deploy.models import create_model
    from tests.mfpi_deploy.export.engines import export_options

    config = {"in_channels": 1, "width": 8, "residual": True}
    net = create_model("mfpinet", **config)
    with torch.no_grad():  # a correction that is not zero, as after training
        net.conv_block[2].weight.normal_(0, 0.02)
    save_checkpoint(net, ModelCard("mfpinet", config), tmp_path / "ckpt")
    engine = export_model(tmp_path / "ckpt", tmp_path / "engine", export_options(fp16=True), log=lambda m: None)
    ops = {n.op_type for n in onnx.load(str(engine / "model.onnx")).graph.node}
    assert "DepthToSpace" in ops and "Pad" in ops  # edge pad + fixed conv + pixel shuffle: bicubic x2
    tiles = np.random.default_rng(1).integers(0, 256, (2, 48, 64, 1), dtype=np.uint8)
    want = TorchBackend(load_checkpoint(tmp_path / "ckpt")).run(tiles)
    got = ort_session(engine / "model.onnx").run(None, {"tiles": tiles})[0]
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    half = ort_session(engine / "model.fp16.onnx").run(None, {"tiles": tiles})[0]
    assert min(json.loads((engine / "manifest.json").read_text())["accuracy"]["fp16"]["psnr_db_real"]) >= 45
    assert np.abs(half.astype(int) - want.astype(int)).mean() < 0.5
