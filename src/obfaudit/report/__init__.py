"""The report: results.json/csv, figure choice, findings and report.html, from saved stages."""

from obfaudit.report.build import write_outputs

__all__ = ["write_outputs"]
