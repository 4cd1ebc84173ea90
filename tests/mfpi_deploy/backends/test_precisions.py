"""Every CPU backend x precision of one engine folder: same contract, output within its gate, overlap in order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mfpi_deploy.backends.openvino_backend import no_bf16_reason
from mfpi_deploy.backends.select import open_backend
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.export.accuracy import psnr_per_plane
from mfpi_deploy.export.calibration import calibration_set
from mfpi_deploy.infer import whole_image
from mfpi_deploy.output import zarr_stack
from mfpi_deploy.run import RunOptions, run_slide
from tests.mfpi_deploy.run.helpers import textured, write_tiff

openvino = pytest.importorskip("openvino")
HAS_BF16 = no_bf16_reason() is None
COMBOS = [
    ("ort-cpu", "fp32"),
    ("ort-cpu", "fp16"),
    ("ort-cpu", "int8"),
    ("openvino", "fp32"),
    ("openvino", "int8"),
    pytest.param("openvino", "bf16", marks=pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bf16")),
    ("torch", "fp32"),
]
QUIET = {"threads": 1, "log": lambda _: None}


@pytest.fixture(scope="module")
def fresh_tiles() -> np.ndarray:
    """Tiles the gates did not see: other grid spots of the shipped images, other simulator seeds."""
    from mfpi_deploy.export.calibration import simulated_tiles

    real, _ = calibration_set(1, 48, 3)
    return np.concatenate([real, simulated_tiles(1, 48, 2, seed=77)])


@pytest.fixture(scope="module")
def reference(mfpinet_engine: Path, fresh_tiles: np.ndarray) -> np.ndarray:
    with open_backend("ort-cpu", mfpinet_engine, precision="fp32", **QUIET) as backend:
        return backend.run(fresh_tiles)


@pytest.mark.parametrize("kind, precision", COMBOS)
def test_backend_precision_runs_within_its_gate(mfpinet_engine, fresh_tiles, reference, kind, precision):
    manifest = json.loads((mfpinet_engine / "manifest.json").read_text())
    with open_backend(kind, mfpinet_engine, precision=precision, **QUIET) as backend:
        assert backend.kind.value == kind and backend.spec.precision == precision
        got = backend.run(fresh_tiles)
        # run_many (OpenVINO: two requests in flight) gives the same, in order, across tile shapes
        small = fresh_tiles[:1, :32, :40]
        many = list(backend.run_many([fresh_tiles[:2], small, fresh_tiles[2:], (fresh_tiles[:2], None)]))
        with pytest.raises(MfpiError, match="8-pixel grid"):
            backend.run(np.zeros((1, 20, 16, 1), np.uint8))
    assert got.shape == (len(fresh_tiles), 11, 96, 96, 1) and got.dtype == np.uint8
    assert np.array_equal(many[0], got[:2]) and np.array_equal(many[2], got[2:]) and np.array_equal(many[3], got[:2])
    assert many[1].shape == (1, 11, 64, 80, 1)
    psnr = min(psnr_per_plane(got, reference))
    if precision == "fp32":
        assert psnr >= 60  # rounding only
    else:  # on tiles the gate did not see: within a few dB of the gate's figure
        gate = manifest["accuracy"][precision]
        assert gate["min_psnr_db"] >= gate["threshold_db"] and psnr >= gate["threshold_db"] - 5


def test_openvino_int8_tiles_add_no_seams(mfpinet_engine, tmp_path):
    """mfpi-run's tiles through OpenVINO int8 (two requests in flight) against one whole-image pass.

    int8 rounds activations to steps, so any change of far context (beyond the halo) flips
    some output values by one level: the reference for "no seams" is how much a whole-image
    pass changes when only its far padding changes (fp32 needs >= 99.9% identical instead).
    """
    image = textured(176, 152, channels=1)[..., None]
    src = write_tiff(tmp_path / "a.tif", image[..., 0], tile=(64, 64))
    with open_backend("openvino", mfpinet_engine, precision="int8", **QUIET) as backend:
        run_slide(
            src, tmp_path / "a.ome.zarr", backend, RunOptions(tile=128, batch=1, progress=False, log=lambda _: None)
        )
        ref, far = whole_image(image, backend, 96), whole_image(image, backend, 256)
    got = np.moveaxis(zarr_stack.open_level(tmp_path / "a.ome.zarr", 0)[:], 0, -1)
    diff, context = np.abs(got.astype(int) - ref), np.abs(far.astype(int) - ref)
    assert got.shape == ref.shape and diff.max() <= 2 and context.max() <= 2
    assert (diff == 0).mean() >= (context == 0).mean() - 0.03
    assert min(psnr_per_plane(got[None], ref[None])) >= 45


def test_openvino_caches_compiled_models(mfpinet_engine, tmp_path, monkeypatch):
    monkeypatch.setenv("MFPI_CACHE_DIR", str(tmp_path / "cache"))
    tiles = np.zeros((1, 32, 32, 1), np.uint8)
    with open_backend("openvino", mfpinet_engine, precision="int8", **QUIET) as backend:
        backend.run(tiles)
        backend.run(np.zeros((2, 32, 32, 1), np.uint8))
        assert len(backend._compiled) == 3  # check_graph's smallest tile, then one per shape in use
        assert backend.executed_precision() == "f32"  # int8 convolutions, f32 elsewhere (never bf16 by default)
    assert any((tmp_path / "cache" / "openvino").iterdir())


def test_openvino_deepz_takes_dpm(deepz_engine):
    tiles = np.random.default_rng(9).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    dpm = np.array([-1.0, 2.0], np.float32)
    raw = {**QUIET, "per_plane": True}
    with open_backend("ort-cpu", deepz_engine, **raw) as o, open_backend("openvino", deepz_engine, **raw) as v:
        want, got = o.run(tiles, dpm), v.run(tiles, dpm)
        many = list(v.run_many([(tiles, dpm), (tiles[:1], dpm[:1])]))
        with pytest.raises(MfpiError, match="DPM"):
            v.run(tiles)
    assert got.shape == (2, 1, 64, 64, 3) and np.abs(got.astype(int) - want).max() <= 1
    assert np.array_equal(many[0], got) and np.array_equal(many[1], got[:1])


@pytest.mark.skipif(HAS_BF16, reason="this CPU has bf16")
def test_bf16_is_refused_on_a_cpu_without_bf16(mfpinet_engine):
    with pytest.raises(MfpiError, match="no bfloat16 arithmetic .*OpenVINO would run the bf16 variant in fp32"):
        open_backend("openvino", mfpinet_engine, precision="bf16", **QUIET)


def test_variants_a_backend_cannot_run_are_refused(mfpinet_engine, tmp_path):
    with pytest.raises(MfpiError, match="openvino runs fp32, bf16, int8, not fp16"):
        open_backend("openvino", mfpinet_engine, precision="fp16", **QUIET)
    with pytest.raises(MfpiError, match="torch runs fp32, not int8"):
        open_backend("torch", mfpinet_engine, precision="int8", **QUIET)
    with pytest.raises(MfpiError, match="fp16=True contradicts precision int8"):
        open_backend("ort-cpu", mfpinet_engine, precision="int8", fp16=True, **QUIET)
    with pytest.raises(MfpiError, match="unknown precision 'int4'"):
        open_backend("ort-cpu", mfpinet_engine, precision="int4", **QUIET)
