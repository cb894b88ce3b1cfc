"""Offline quality metrics for generated images, on features of a batchgap classifier."""
