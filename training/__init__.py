"""Training of MFPINet on multi-focal stacks: data, GAN training, evaluation (the simulator and
the degradation live in mfpi_deploy.synth and mfpi_deploy.degrade, shared with the runtime).

Public entry points: `training.stack.open_stack`, `mfpi_deploy.synth.simulate_stack`,
`training.trainer.train` / `resume`, `training.evaluate.evaluate`, and the commands in
`training.cli` (`mfpi-train`, `mfpi-eval`).
"""

from __future__ import annotations
