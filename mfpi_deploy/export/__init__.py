"""Export: checkpoint -> ONNX (fp32, fp16) -> TensorRT engine, with accuracy gates and a manifest.

The public entry points live in `mfpi_deploy.export.api`.
"""

from __future__ import annotations
