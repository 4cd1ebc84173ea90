"""The "MFPINet refocus" widget, headless (QT_QPA_PLATFORM=offscreen): its layer equals `predict_image`;
cancel adds nothing. Skipped without napari and pytest-qt (pip install -e '.[napari]' pytest-qt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari", reason="napari is not installed (pip install -e '.[napari]')")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed (pip install pytest-qt)")

from napari.components import ViewerModel

from mfpi_deploy.backends.select import open_backend
from mfpi_deploy.infer.image import predict_image
from mfpi_deploy.napari.widget import RefocusWidget
from tests.mfpi_deploy.run.helpers import textured, tiny_checkpoint

RUN_TIMEOUT_MS = 120_000


def _widget(viewer: ViewerModel, ckpt: Path, layer: object) -> RefocusWidget:
    widget = RefocusWidget(viewer)
    widget.engine.value, widget.backend.value, widget.layer.value = str(ckpt), "torch", layer
    return widget


@pytest.mark.parametrize("channels, dtype", [(3, np.uint8), (1, np.uint16)])
def test_widget_adds_the_stack_with_physical_scale(qtbot, tmp_path: Path, channels: int, dtype: type) -> None:
    ckpt = tiny_checkpoint(tmp_path / "ckpt", channels=channels)
    image = textured(72, 56, channels=channels, dtype=dtype)
    viewer = ViewerModel()
    layer = viewer.add_image(image, rgb=channels == 3, scale=(0.5, 0.5), translate=(100.0, 200.0), name="slide")
    widget = _widget(viewer, ckpt, layer)
    assert widget.start() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=RUN_TIMEOUT_MS)
    assert widget.status.value.startswith("done"), widget.status.value
    stack = viewer.layers[-1]
    with open_backend("torch", ckpt, log=lambda line: None) as backend:
        want = predict_image(image, backend)
    np.testing.assert_array_equal(stack.data, want if channels == 3 else want[..., 0])
    assert stack.rgb is (channels == 3) and stack.data.shape[:3] == (11, 144, 112)
    np.testing.assert_allclose(stack.scale, (2.7, 0.25, 0.25))
    np.testing.assert_allclose(stack.translate, (-13.5, 100.0 - 0.125, 200.0 - 0.125))
    assert stack.metadata["planes_um"][0] == -13.5 and len(viewer.layers) == 2


def test_cancel_adds_no_layer(qtbot, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    viewer = ViewerModel()
    layer = viewer.add_image(textured(64, 64), rgb=True, name="slide")
    widget = _widget(viewer, ckpt, layer)
    widget.start()
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=RUN_TIMEOUT_MS)
    assert widget.status.value == "cancelled"
    assert [lyr.name for lyr in viewer.layers] == ["slide"]
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_a_3d_layer_is_refused_with_one_line(qtbot, tmp_path: Path) -> None:
    viewer = ViewerModel()
    layer = viewer.add_image(np.zeros((5, 16, 16), np.uint8), name="volume")
    widget = _widget(viewer, tmp_path, layer)
    assert widget.start() is None
    assert widget.status.value.startswith("error: the layer is 3D grey")


def test_manifest_names_importable_contributions() -> None:
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_file(Path(__file__).parents[3] / "mfpi_deploy" / "napari" / "napari.yaml")
    assert [w.display_name for w in manifest.contributions.widgets] == ["MFPINet refocus"]
    for command in manifest.contributions.commands:
        module, attr = command.python_name.split(":")
        assert callable(getattr(__import__(module, fromlist=[attr]), attr))


def test_visible_region_of_a_multiscale_layer_runs_its_level_0_pixels(qtbot, tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    image = textured(96, 80)
    viewer = ViewerModel()
    layer = viewer.add_image([image, image[::2, ::2]], rgb=True, multiscale=True, scale=(0.5, 0.5), name="pyramid")
    # what a zoomed-in canvas leaves in the layer: level 1 shown, its pixels 5..20 x 10..29 visible
    layer._data_level, layer.corner_pixels = 1, np.array([[5, 10], [20, 29]])
    widget = _widget(viewer, ckpt, layer)
    widget.visible_only.value = True
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=RUN_TIMEOUT_MS)
    assert widget.status.value.startswith("done"), widget.status.value
    stack = viewer.layers[-1]
    with open_backend("torch", ckpt, log=lambda line: None) as backend:
        want = predict_image(image[10:42, 20:60], backend)  # level 0: rows 10..42, columns 20..60
    np.testing.assert_array_equal(stack.data, want)
    np.testing.assert_allclose(stack.translate[1:], ((10 - 0.25) * 0.5, (20 - 0.25) * 0.5))
