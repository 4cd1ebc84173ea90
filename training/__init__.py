"""Training of MFPINet on multi-focal stacks: data, optical simulator, GAN training, evaluation.

Public entry points: `training.stack.open_stack`, `training.synth.simulate_stack`,
`training.trainer.train`, `training.evaluate.evaluate_checkpoint`, and the commands in
`training.cli` (`mfpi-train`, `mfpi-eval`).
"""
from __future__ import annotations
