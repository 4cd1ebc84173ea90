"""napari plugin (npe2, `pip install -e '.[napari]'`): the "MFPINet refocus" widget and a reader for
`mfpi-run` outputs. Only widget.py imports Qt; layers, refocus and reader run without it."""
