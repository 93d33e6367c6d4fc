"""The weekly sweep: decisions, known-red memory, cold runs, the harness, promote."""
