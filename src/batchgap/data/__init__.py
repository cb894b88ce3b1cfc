"""Datasets: packaged real data and torchvision data, held as tensors and batched by index."""
