"""`mfpi-serve`: a local web server that shows slides as Deep Zoom (DZI) tiles, the input and the
11 refocused planes, computed on request through the same tiled inference as `mfpi-run`
(`infer.stream_tiles` over `run.plan_run`'s tile plan), or read from a finished `mfpi-run` output.

Modules: `dzi` (pure Deep Zoom geometry), `mapping` (pure: DZI tiles -> engine tiles),
`cache` (LRU bounded in bytes, coalescing compute queue), `views` (the pixel sources: input,
live engine planes, stored output planes), `slides` (what the command line names, opened and
checked at start), `render` (a DZI tile's pixels, encoded), `app` (the ASGI routes).
"""
