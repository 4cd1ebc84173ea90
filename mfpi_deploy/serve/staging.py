"""Disk staging of a live slide in `mfpi-run`'s own partial-run format, used both ways.

With `mfpi-serve --stage DIR` a live slide is planned as `mfpi-run SLIDE --output
DIR/NAME.mfp.ome.zarr` (OME-Zarr: its staged chunks are lossless), and its partial run
`DIR/NAME.mfp.ome.zarr.partial/` is shared with `mfpi-run`:

- batches its journal lists as done are read from the staged stack, not computed;
- batches the viewer computes are written and journaled by `mfpi-run`'s own tile loop
  (`run.compute.stream_batches`), so `mfpi-run ... --resume` computes only the rest.

Writing follows `mfpi-run`'s rules: the output's lock (`run.lock`) is taken for each write and
the owner token claimed, as a resume does; while another process holds the lock (a running
`mfpi-run`), the viewer only reads, and computes what it lacks in memory alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from mfpi_deploy.backends.base import Backend
from mfpi_deploy.errors import MfpiError
from mfpi_deploy.output.layout import OutputFormat
from mfpi_deploy.output.reader import StackReader
from mfpi_deploy.run.compute import stream_batches
from mfpi_deploy.run.lock import OutputBusy, output_lock
from mfpi_deploy.run.options import RunOptions
from mfpi_deploy.run.plan import PlannedRun
from mfpi_deploy.run.stage import owner_check, prepare_state
from mfpi_deploy.run.state import mismatches
from mfpi_deploy.serve.mapping import engine_box
from mfpi_deploy.slide import TileSource
from mfpi_deploy.tiling import Tile


class Stage:
    """The partial run of one live slide: which batches it holds, reading their cores, writing new ones."""

    def __init__(self, run: PlannedRun, log: Callable[[str], None] = print) -> None:
        if run.format is not OutputFormat.OME_ZARR:
            raise MfpiError(f"{run.output}: staging needs an OME-Zarr output (lossless chunks)")
        self.run, self.state, self.log = run, run.state, log
        self.scale = run.grid.core // run.plan.core
        self._lock = threading.Lock()
        self._done: set[int] = set()
        self._refused = False  # a partial run made with other settings: never touched
        self.refresh()

    def refresh(self) -> set[int]:
        """Re-read the journal: the batches safely on disk (none if the partial run is not ours)."""
        done: set[int] = set()
        if self.state.exists() and not self._refused:
            differ = mismatches(self.state.settings(), self.run.settings)
            if differ:
                self._refused = True
                self.log(f"warning: {self.state.root} was started with different {', '.join(differ)}; not used")
            else:
                done = self.state.done_batches()
        with self._lock:
            self._done = done
        return done

    def has(self, index: int) -> bool:
        """Engine tile `index` is on disk (as of the last look at the journal)."""
        return index // self.run.batch in self._done

    def read(self, indices: Sequence[int]) -> dict[int, np.ndarray]:
        """The cores (planes, h, w, C) of `indices` and their batch-mates found on disk; others left out."""
        wanted = {i // self.run.batch for i in indices}
        done = self._done if wanted <= self._done else self.refresh()
        found: dict[int, np.ndarray] = {}
        if not wanted & done:
            return found
        try:
            with StackReader(self.state.stack) as stack:
                for b in sorted(wanted & done):
                    for i in self.run.groups[b]:
                        found[i] = stack.read_planes(engine_box(self.run.plan, self.scale, i))
        except Exception:  # the run was finished or removed meanwhile: compute instead
            self.refresh()
            return {}
        return found

    def compute(
        self, source: TileSource, backend: Backend, todo: Sequence[int], on_tile: Callable[[Tile, np.ndarray], None]
    ) -> bool:
        """Compute batches `todo` into the partial run with `mfpi-run`'s tile loop and journal,
        handing every core to `on_tile`; False (nothing done) when the run is not the viewer's to
        write (another process holds its lock, it is finished, or it has other settings)."""
        if self._refused or self.run.output.exists():
            return False
        options = RunOptions(progress=False, resume=True, log=lambda _: None)
        try:
            self.run.output.parent.mkdir(parents=True, exist_ok=True)
            with output_lock(self.run.output):
                try:
                    prepare_state(self.run, options)  # create it, or check a resumed one's settings
                except MfpiError as exc:
                    self._refused = True
                    self.log(f"warning: not staging: {exc}")
                    return False
                token = self.state.claim()
                with self.state.open_journal() as journal:
                    stream_batches(
                        source,
                        self.run,
                        list(todo),
                        backend,
                        journal,
                        options,
                        check=owner_check(self.state, token),
                        on_tile=on_tile,
                    )
        except OutputBusy:
            return False
        self.refresh()
        return True
