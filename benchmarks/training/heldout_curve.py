"""Held-out margin over bicubic at every validation of a run (`mfpi-train --snapshots`): whether the
checkpoint the validation blocks choose is the one that does best on data the run never saw.

    RUNS=runs/heldout RESULTS=benchmarks/training/heldout \\
        benchmarks/training/newcomer.sh STACK NAME/seedN 15 --seed N --snapshots
    python benchmarks/training/heldout_curve.py runs/heldout/NAME/seedN STACK benchmarks/training/heldout/NAME/seedN

Each snapshot is scored by `mfpi-eval` on the newcomer's held-out right quarter; writes curve.md and
curve.json in the results folder (with the validation margin the run logged at that step).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seeds import margins

HELD_OUT = "0:1.0,0.75:1.0"
# the mfpi-eval of this interpreter's environment (a venv's bin/ need not be on PATH)
EVAL = shutil.which("mfpi-eval", path=str(Path(sys.executable).parent)) or "mfpi-eval"


def score(checkpoint: Path, stack: str) -> list[float]:
    """Per-plane PSNR margin of `checkpoint` over bicubic on the held-out quarter (mfpi-eval)."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [EVAL, str(checkpoint), "--data", stack, "--region", HELD_OUT, "--out", out]
        subprocess.run(cmd, check=True, capture_output=True)
        return margins(json.loads((Path(out) / "metrics.json").read_text()))


def main(run: Path, stack: str, results: Path) -> None:
    log = {r["global_step"]: r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())}
    best = json.loads((run / "best" / "card.json").read_text()) if (run / "best").is_dir() else {}
    rows = []
    for snap in sorted((run / "snapshots").iterdir()):
        step = int(snap.name.split("-")[1])
        held = score(snap, stack)
        rec = log.get(step, {})
        rows.append(
            {
                "step": step,
                "epoch": rec.get("epoch"),
                "val_margin_db": rec.get("val_margin_db"),
                "held_out_mean_db": sum(held) / len(held),
                "held_out_lowest_db": min(held),
                "held_out_planes_db": held,
            }
        )
    chosen = best.get("provenance", {}).get("epochs")
    results.mkdir(parents=True, exist_ok=True)
    (results / "curve.json").write_text(json.dumps({"run": str(run), "stack": stack, "rows": rows}, indent=2) + "\n")
    top = max(rows, key=lambda r: r["held_out_mean_db"])
    lines = [
        f"# Held-out margin at every validation: {run.name} of {Path(stack).name}",
        "",
        f"`python benchmarks/training/heldout_curve.py {' '.join(sys.argv[1:])}`; held-out region {HELD_OUT} "
        "(the newcomer's right quarter), margins = model PSNR - bicubic PSNR per plane, in dB; validation "
        "margin = the run's own (summed over planes, on its validation blocks). Conditions of the run: "
        "conditions.txt beside this file.",
        "",
        "| step | epoch | validation margin (sum) | held-out mean margin | held-out lowest plane "
        "| far planes (last 4) |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['step']} | {r['epoch']} | {r['val_margin_db']} | {r['held_out_mean_db']:+.2f} | "
            f"{r['held_out_lowest_db']:+.2f} | {' '.join(f'{m:+.2f}' for m in r['held_out_planes_db'][-4:])} |"
            for r in rows
        ],
        "",
        f"Best on the held-out quarter: step {top['step']} ({top['held_out_mean_db']:+.2f} dB mean, lowest plane "
        f"{top['held_out_lowest_db']:+.2f}); best/ chosen on validation: epoch {chosen}.",
        "",
    ]
    (results / "curve.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
