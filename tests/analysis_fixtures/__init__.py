"""Fake run directories in the format batchgap's training side writes."""

from .fake_runs import hoffer_study, log_spaced_updates, write_run

__all__ = ["hoffer_study", "log_spaced_updates", "write_run"]
