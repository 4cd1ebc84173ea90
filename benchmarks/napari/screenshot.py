"""Screenshot of the "MFPINet refocus" widget in napari on the simulated sample slide, for the README.

Runs the widget as a user would (bundled model, torch backend by default), waits for the stack
layer, moves the z slider to a plane and saves the whole window. Needs `pip install -e '.[napari]'`
and a display; headless on Linux: `xvfb-run -a python benchmarks/napari/screenshot.py`.

    python benchmarks/napari/screenshot.py [--size 512] [--backend torch] [--plane 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--engine", default="default")
    ap.add_argument("--plane", type=int, default=3, help="plane index the z slider is left on")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/napari/results/widget.png"))
    args = ap.parse_args()

    import napari
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from qtpy.QtWidgets import QApplication
    from skimage.io import imsave

    from mfpi_deploy.napari.widget import RefocusWidget
    from mfpi_deploy.run.sample import make_sample

    sample = make_sample(args.size)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 850)
    px = sample.pixel_size_um
    layer = viewer.add_image(sample.image, rgb=True, scale=(px, px), name="sample", units=("micrometer",) * 2)
    widget = RefocusWidget(viewer)
    viewer.window.add_dock_widget(widget, name="MFPINet refocus", area="right")
    widget.layer.value, widget.backend.value = layer, args.backend
    if args.engine != "default":
        widget.engine.value = args.engine
    start = time.perf_counter()
    widget.start()
    while widget.worker is not None:
        QApplication.processEvents()
        time.sleep(0.05)
    print(f"{widget.status.value} ({time.perf_counter() - start:.1f} s)")
    layer.visible = False
    viewer.dims.set_current_step(0, args.plane)
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):  # e.g. napari's PyQt5 notice
        toast.close()
    for _ in range(10):
        QApplication.processEvents()
        time.sleep(0.05)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    imsave(args.out, viewer.screenshot(canvas_only=False, flash=False), check_contrast=False)
    print(f"wrote {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
