"""The programs the harness runs and measures, one process per tool run."""
