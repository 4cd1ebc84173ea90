"""A refocus job without Qt equals `predict_image` on the same image; cancelling returns nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from mfpi_deploy.backends.select import open_backend
from mfpi_deploy.checkpoint.default import DEFAULT_MODEL_DIR
from mfpi_deploy.infer.image import predict_image
from mfpi_deploy.napari.layers import Placement
from mfpi_deploy.napari.refocus import RefocusCancelled, RefocusJob, engine_source, refocus
from mfpi_deploy.tiling import Box
from tests.mfpi_deploy.run.helpers import textured, tiny_checkpoint

QUIET = dict(log=lambda line: None)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


def test_refocus_equals_predict_image_with_placement(ckpt: Path) -> None:
    image = textured(72, 56)
    job = RefocusJob(
        engine=str(ckpt),
        backend="torch",
        placement=Placement((0.5, 0.5), (0.0, 0.0)),
        region=Box(8, 16, 80, 72),
        name="slide",
    )
    seen: list[tuple[int, int]] = []
    data, kwargs, kind = refocus(image, job, progress=lambda d, t: seen.append((d, t)), **QUIET)
    with open_backend("torch", ckpt, **QUIET) as backend:
        want = predict_image(image, backend)
    assert kind == "image" and kwargs["rgb"] is True
    np.testing.assert_array_equal(data, want)
    assert kwargs["scale"] == pytest.approx((2.7, 0.25, 0.25))
    assert kwargs["translate"] == pytest.approx((-13.5, 8 * 0.5 - 0.125, 16 * 0.5 - 0.125))
    assert kwargs["name"].startswith("slide refocused, z -13.5..13.5 µm (11 planes)")
    assert seen and seen[-1][0] == seen[-1][1]


def test_cancel_during_the_run_raises_and_returns_nothing(ckpt: Path) -> None:
    cancel = threading.Event()
    with pytest.raises(RefocusCancelled):
        refocus(
            textured(48, 48),
            RefocusJob(engine=str(ckpt), backend="torch"),
            cancel=cancel,
            progress=lambda d, t: cancel.set(),
            **QUIET,
        )
    with pytest.raises(RefocusCancelled):  # cancelled before the engine is opened
        refocus(textured(48, 48), RefocusJob(engine=str(ckpt), backend="torch"), cancel=cancel, **QUIET)


def test_default_engine_on_torch_is_the_bundled_checkpoint() -> None:
    assert engine_source("default", "torch", print) == DEFAULT_MODEL_DIR
    assert engine_source("", "torch", print) == DEFAULT_MODEL_DIR
    assert engine_source("/no/such/folder/default", "torch", print) == DEFAULT_MODEL_DIR  # a file picker's
    assert engine_source("/some/engine", "ort-cpu", print) == Path("/some/engine")
