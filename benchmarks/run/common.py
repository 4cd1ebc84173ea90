"""Shared bits of the run benchmarks: a test image and a model to run."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def sample_image(size: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """An RGB uint8 slide-like image: the simulated sample slide if the training package is
    there, else smoothed random noise."""
    try:
        from mfpi_deploy.run.sample import make_sample

        return make_sample(size, seed).image, "simulated cytology sample (mfpi-run --make-sample)"
    except Exception:
        pass
    from skimage.filters import gaussian

    rng = np.random.default_rng(seed)
    noise = rng.random((size, size, 3))
    blobs = gaussian(noise, sigma=6, channel_axis=-1)
    fine = gaussian(noise, sigma=1.5, channel_axis=-1)
    img = 0.7 * (blobs - blobs.min()) / np.ptp(blobs) + 0.3 * (fine - fine.min()) / np.ptp(fine)
    return (img * 255).round().astype(np.uint8), "smoothed random noise (no simulator available)"


def write_report(out: str, result: dict, lines: list[str]) -> None:
    """Record a measurement as OUT.json (for machines) and OUT.md (for people), and print it."""
    Path(out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    Path(out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
