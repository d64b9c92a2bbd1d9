"""The report, the error gallery and the comparison across experiments."""
