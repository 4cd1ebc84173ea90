"""Does averaging a run's weights beat choosing one of its checkpoints? The evidence behind
`mfpi-train`'s weight averaging (training.averaging), from runs made with `--snapshots` before it.

    python benchmarks/training/snapshot_average.py runs/heldout benchmarks/training/heldout

For each RUNS/NAME/seedN with snapshots/ (and its curve.json in RESULTS/NAME/seedN, written by
heldout_curve.py), the uniform average of all its snapshots' weights is scored by `mfpi-eval` on the
held-out right quarter, beside the best single snapshot and the one validation chose; writes
RESULTS/averages.md and averages.json.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heldout_curve import score

WEIGHTS = "model.safetensors"


def average(snapshots: list[Path], out: Path) -> Path:
    """A checkpoint folder whose weights are the mean of the snapshots' (card of the first)."""
    total: dict[str, torch.Tensor] = {}
    for snap in snapshots:
        for k, v in load_file(str(snap / WEIGHTS)).items():
            total[k] = total.get(k, 0) + v.double()
    shutil.copytree(snapshots[0], out)
    save_file({k: (v / len(snapshots)).float().contiguous() for k, v in total.items()}, str(out / WEIGHTS))
    return out


def main(runs: Path, results: Path) -> None:
    rows = []
    for run in sorted(p for p in runs.glob("*/seed*") if (p / "snapshots").is_dir()):
        name = f"{run.parent.name}/{run.name}"
        curve = json.loads((results / name / "curve.json").read_text())
        chosen_epoch = json.loads((run / "best" / "card.json").read_text())["provenance"]["epochs"]
        by_epoch = {r["epoch"]: r for r in curve["rows"]}
        chosen = by_epoch.get(float(chosen_epoch))
        top = max(curve["rows"], key=lambda r: r["held_out_mean_db"])
        snaps = sorted((run / "snapshots").iterdir())
        with tempfile.TemporaryDirectory() as tmp:
            held = score(average(snaps, Path(tmp) / "avg"), curve["stack"])
        rows.append(
            {
                "run": name,
                "snapshots": len(snaps),
                "steps": [int(s.name.split("-")[1]) for s in (snaps[0], snaps[-1])],
                "average": {"mean_db": sum(held) / len(held), "lowest_db": min(held), "planes_db": held},
                "best_single": {k: top[k] for k in ("step", "held_out_mean_db", "held_out_lowest_db")},
                "validation_choice": None
                if chosen is None
                else {k: chosen[k] for k in ("step", "held_out_mean_db", "held_out_lowest_db")},
            }
        )
    (results / "averages.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    lines = [
        "# Averaged weights against single checkpoints, on the held-out quarter",
        "",
        f"`python benchmarks/training/snapshot_average.py {' '.join(sys.argv[1:])}`: each run's snapshots "
        "(every validation, `--snapshots`) averaged uniformly and scored by `mfpi-eval` on the newcomer's "
        "right quarter; margins = model PSNR - bicubic PSNR, dB, mean over planes / lowest plane. The runs "
        "and their conditions: NAME/seedN/curve.md and conditions.txt (made before weight averaging).",
        "",
        "| run | snapshots (steps) | average of all: mean / lowest | best single snapshot: step, mean / lowest "
        "| validation's choice: step, mean / lowest |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        a, b, c = r["average"], r["best_single"], r["validation_choice"]
        lines.append(
            f"| {r['run']} | {r['snapshots']} ({r['steps'][0]}-{r['steps'][1]}) | "
            f"{a['mean_db']:+.2f} / {a['lowest_db']:+.2f} | {b['step']}: {b['held_out_mean_db']:+.2f} / "
            f"{b['held_out_lowest_db']:+.2f} | "
            + ("n/a" if c is None else f"{c['step']}: {c['held_out_mean_db']:+.2f} / {c['held_out_lowest_db']:+.2f}")
            + " |"
        )
    lines.append("")
    (results / "averages.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
