"""Analysis of batchgap run records: diffusion fits, gap tables, figures and a report.

Reads records only (no torch), so a laptop without the training stack can run it.
"""

from batchgap_analysis.pipeline import Analysis, analyze
from batchgap_analysis.records import NoRunsError, load_records

__all__ = ["Analysis", "NoRunsError", "analyze", "load_records"]
