"""A quick look without a viewer: a PNG montage of the input and a few output planes of one region.

The planes are read from the finished output window by window (never the whole stack), the
input through the run's own reader and pixel rule, shown at the output's scale (nearest
neighbour), each panel labelled with its z offset.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mfpi_deploy.checkpoint.card import z_label
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.fileio import write_atomic
from mfpi_deploy.output.reader import StackReader
from mfpi_deploy.run.options import PreviewOptions
from mfpi_deploy.slide import Region, TileSource
from mfpi_deploy.tiling import Box

LABEL_HEIGHT = 22  # pixels above each panel for its label
GAP = 4  # pixels between panels and around the montage
COLUMNS = 3
BACKGROUND = 32  # dark grey
FONT_SIZE = 14
_OUTPUT_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.zarr")


def preview_path(output: Path, options: PreviewOptions) -> Path:
    """The PNG to write: the given path, else `<output stem>.preview.png` next to the output."""
    if options.path is not None:
        return Path(options.path)
    name = output.name
    for suffix in _OUTPUT_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return output.with_name(f"{name}.preview.png")


def preview_box(options: PreviewOptions, run_region: Region) -> Box:
    """The preview's window in run-region coordinates (input pixels): the given region (in pixels of
    the slide level), which must lie inside the region run, or a centred block of `side` pixels."""
    if options.region is None:
        h, w = min(options.side, run_region.height), min(options.side, run_region.width)
        y0, x0 = (run_region.height - h) // 2, (run_region.width - w) // 2
        return Box(y0, x0, y0 + h, x0 + w)
    r = options.region
    inside = (
        r.width > 0
        and r.height > 0
        and r.x >= run_region.x
        and r.y >= run_region.y
        and r.x + r.width <= run_region.x + run_region.width
        and r.y + r.height <= run_region.y + run_region.height
    )
    if not inside:
        raise MfpiError(
            f"--preview-region x={r.x} y={r.y} w={r.width} h={r.height} is not inside the part run "
            f"(x={run_region.x} y={run_region.y} w={run_region.width} h={run_region.height})"
        )
    y0, x0 = r.y - run_region.y, r.x - run_region.x
    return Box(y0, x0, y0 + r.height, x0 + r.width)


def shown_planes(count: int, wanted: int) -> list[int]:
    """First, last and evenly spaced planes between (at most `wanted`, each once)."""
    if count <= wanted:
        return list(range(count))
    return sorted({int(v) for v in np.rint(np.linspace(0, count - 1, wanted))})  # halves to even: symmetric for 11


def panel_origins(count: int, height: int, width: int, columns: int = COLUMNS) -> list[tuple[int, int]]:
    """Top-left (y, x) of each panel's pixels in the montage, row by row."""
    return [
        (GAP + LABEL_HEIGHT + (i // columns) * (LABEL_HEIGHT + height + GAP), GAP + (i % columns) * (width + GAP))
        for i in range(count)
    ]


def montage(panels: Sequence[np.ndarray], labels: Sequence[str], columns: int = COLUMNS) -> np.ndarray:
    """Equal-sized (h, w, 1 or 3) uint8 panels in a grid, each under its label, as (H, W, 3) uint8 RGB."""
    h, w = panels[0].shape[:2]
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    canvas = np.full((GAP + rows * (LABEL_HEIGHT + h + GAP), GAP + columns * (w + GAP), 3), BACKGROUND, np.uint8)
    origins = panel_origins(len(panels), h, w, columns)
    for (y, x), panel in zip(origins, panels):
        canvas[y : y + h, x : x + w] = panel if panel.shape[-1] == 3 else np.repeat(panel, 3, axis=-1)
    image = Image.fromarray(canvas)
    draw, font = ImageDraw.Draw(image), _font()
    for (y, x), label in zip(origins, labels):
        draw.text((x + 2, y - LABEL_HEIGHT + 3), label, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans from matplotlib (it has µ); PIL's built-in font if that is missing."""
    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), FONT_SIZE)
    except (ImportError, OSError):
        return ImageFont.load_default()


def write_preview(
    output: Path, source: TileSource, planes_um: Sequence[float], options: PreviewOptions, *, z_in_steps: bool = False
) -> Path:
    """Write the montage for the finished `output` of `source` (the run's input windows); returns its path.
    Planes are labelled by their offsets, in µm or (`z_in_steps`) plane steps."""
    box = preview_box(options, source.region)
    with StackReader(output) as stack:
        scale = stack.height // source.height
        out_box = Box(box.y0 * scale, box.x0 * scale, box.y1 * scale, box.x1 * scale)
        picked = shown_planes(stack.planes, options.planes)
        panels = [np.repeat(np.repeat(source.read(box), scale, axis=0), scale, axis=1)]
        panels += [stack.read(z, out_box) for z in picked]
    r = source.region
    labels = [f"input x={r.x + box.x0} y={r.y + box.y0}" + (f" ({scale}x)" if scale > 1 else "")]
    labels += [z_label(planes_um[z], z_in_steps) for z in picked]
    buffer = io.BytesIO()
    Image.fromarray(montage(panels, labels)).save(buffer, format="PNG")
    return write_atomic(preview_path(output, options), buffer.getvalue())
