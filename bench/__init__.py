"""bucketzip benchmarks: `python -m bench --help` (see README, "Benchmarks")."""
