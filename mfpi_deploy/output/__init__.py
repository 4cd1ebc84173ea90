"""Writers of the output stack: OME-Zarr (written tile by tile) and OME-TIFF (from the Zarr)."""

from mfpi_deploy.output.layout import OutputFormat, StackLayout

__all__ = ["OutputFormat", "StackLayout"]
