"""Hoffer's remedies as configuration: lr scaling rules and training regimes."""
