"""Tiled inference, one path for every caller: `mfpi-run`, `mfpi-eval`, the halo and pipeline benchmarks.

Named roles as in MONAI's inferers: the splitter is `tiling.TilePlan` (tiles with a halo on
the network's grid), the network a `Backend`, the merger a callback that writes each tile's
core. `stream_tiles` runs them with reading, inference and writing overlapped;
`predict_image` applies it to an image in memory; `whole_image` is the untiled reference.
"""

from __future__ import annotations

from mfpi_deploy.infer.image import predict_image
from mfpi_deploy.infer.stream import stream_tiles
from mfpi_deploy.infer.whole import whole_image

__all__ = ["predict_image", "stream_tiles", "whole_image"]
