"""Qt runs headless in these tests (no display needed): the offscreen platform unless one is set."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
