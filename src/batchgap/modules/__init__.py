"""LightningModules: they own optimizers, schedules, losses and metrics, not architectures."""
