"""Training: state and step, the loop, checkpoints, losses, optimizers,
augmentation, precise BN and the run directory (docs/architecture.md)."""
