"""batchgap: distributed batch-size scaling studies of the generalization gap."""

__version__ = "0.1.0"
