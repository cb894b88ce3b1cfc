"""Gradient noise scale: how large a batch can grow before it stops paying (McCandlish 2018)."""
