"""Training of MFPINet on multi-focal stacks: data, optical simulator, GAN training, evaluation.

Public entry points: `training.stack.open_stack`, `training.synth.simulate_stack`,
`training.trainer.train` / `resume`, `training.evaluate.evaluate`, and the commands in
`training.cli` (`mfpi-train`, `mfpi-eval`).
"""
from __future__ import annotations
