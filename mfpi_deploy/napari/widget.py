"""The "MFPINet refocus" dock widget: pick layer, engine and backend, run `refocus` in a napari thread
worker with progress and cancel, add the focal stack as a new layer. The logic lives in refocus.py."""

from __future__ import annotations

import threading
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, ProgressBar, PushButton
from napari.components import ViewerModel
from napari.layers import Image
from napari.qt.threading import FunctionWorker, create_worker
from qtpy.QtCore import QObject, Signal

from mfpi_deploy.backends.base import BackendKind
from mfpi_deploy.checkpoint.default import DEFAULT_NAME
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.napari.layers import LayerData, Placement, full_box, layer_pixels, visible_box
from mfpi_deploy.napari.refocus import RefocusCancelled, RefocusJob, refocus
from mfpi_deploy.tiling import Box


class _Relay(QObject):
    """Carries progress (done, total tiles) and log lines from worker threads to the Qt thread (queued signals)."""

    tiles = Signal(int, int)
    line = Signal(str)


def layer_job(layer: Image, **options: Any) -> RefocusJob:
    """The job for an image layer: its place in the world, name and y/x unit, plus `options`."""
    unit = str(layer.units[-1]) if hasattr(layer, "units") else "pixel"
    placement = Placement(tuple(float(s) for s in layer.scale[-2:]), tuple(float(t) for t in layer.translate[-2:]))
    return RefocusJob(placement=placement, name=layer.name, pixel_unit=None if unit == "pixel" else unit, **options)


def visible_region(layer: Image) -> Box:
    """The level-0 pixels of `layer` shown on the canvas (napari's corner pixels of the displayed level)."""
    whole = full_box(layer.data, layer.rgb, layer.multiscale)
    factors = layer.downsample_factors[layer.data_level] if layer.multiscale else (1.0, 1.0)
    return visible_box(layer.corner_pixels, factors, whole)


class RefocusWidget(Container):
    """MFPINet refocus: one 2D image layer (or its visible part) -> an 11-plane focal stack layer."""

    def __init__(self, napari_viewer: ViewerModel) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: FunctionWorker | None = None
        self._cancel_event = threading.Event()
        self.layer = ComboBox(label="image", choices=self._image_layers, nullable=True)
        self.engine = FileEdit(
            label="engine",
            mode="d",
            value=DEFAULT_NAME,
            tooltip="an engine folder from mfpi-export, a checkpoint folder (torch), or 'default': the bundled model",
        )
        self.backend = ComboBox(label="backend", choices=[k.value for k in BackendKind], value=BackendKind.AUTO.value)
        self.visible_only = CheckBox(text="visible region only", value=False)
        self.convert_channels = CheckBox(text="convert grey <-> RGB", value=False)
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="tiles", value=0, min=0, max=1)
        self.status = Label(value="")
        self.extend(
            [
                self.layer,
                self.engine,
                self.backend,
                self.visible_only,
                self.convert_channels,
                self.run_button,
                self.cancel_button,
                self.progress,
                self.status,
            ]
        )
        self._relay = _Relay()
        self._relay.tiles.connect(self._show_progress)
        self._relay.line.connect(self._show_line)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self.reset_choices)
        self.reset_choices()

    def _image_layers(self, _: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def start(self) -> FunctionWorker | None:
        """Start a run on the chosen layer; returns its worker (None when nothing could start)."""
        layer = self.layer.value
        if self.worker is not None:
            return None
        if layer is None:
            self.status.value = "no image layer chosen"
            return None
        try:
            region = visible_region(layer) if self.visible_only.value else None
            full_box(layer.data, layer.rgb, layer.multiscale)
        except MfpiError as exc:
            self.status.value = f"error: {exc}"
            return None
        job = layer_job(
            layer,
            engine=str(self.engine.value),
            backend=self.backend.value,
            region=region,
            convert_channels=self.convert_channels.value,
        )
        self._cancel_event = threading.Event()
        data, rgb, multiscale = layer.data, layer.rgb, layer.multiscale

        def work() -> LayerData:
            image = layer_pixels(data, rgb=rgb, multiscale=multiscale, region=region)
            return refocus(
                image, job, cancel=self._cancel_event, progress=self._relay.tiles.emit, log=self._relay.line.emit
            )

        self.worker = create_worker(work, _start_thread=False, _ignore_errors=True)  # _failed reports them
        self.worker.returned.connect(self._add_layer)
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(self._finished)
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.progress.value, self.status.value = 0, "starting"
        self.worker.start()
        return self.worker

    def cancel(self) -> None:
        """Ask the running job to stop after its current batch; no layer is added."""
        self._cancel_event.set()
        self.status.value = "cancelling"

    def _show_line(self, line: str) -> None:
        self.status.value = line

    def _show_progress(self, done: int, total: int) -> None:
        self.progress.max, self.progress.value = max(total, 1), done
        self.status.value = f"{done}/{total} tiles"

    def _add_layer(self, layer_data: LayerData) -> None:
        data, kwargs, _ = layer_data
        self.viewer.add_image(data, **kwargs)
        self.status.value = f"done: {kwargs['name']}"

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, RefocusCancelled):
            self.status.value = "cancelled"
        elif isinstance(exc, MfpiError):
            self.status.value = f"error: {exc}"
        else:
            self.status.value = f"error: unexpected {type(exc).__name__}: {exc}"

    def _finished(self) -> None:
        self.worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False
