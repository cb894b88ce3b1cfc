"""Hydra config groups, shipped inside the package so `pkg://batchgap.conf` finds them."""
