"""Pure metrics: per-request timing records, mergeable histograms, aggregates, the run over time."""
