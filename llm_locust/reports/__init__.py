"""Reports: pure functions of the results dict (summary, files, HTML, compare, charts)."""
