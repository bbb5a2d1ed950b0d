"""Benchmarks of the exporter as users feel it, each against a baseline run in
the same process and the same run. Not tests: `python -m benchmarks.run`
(full) or `--smoke` (seconds; what CI runs). See benchmarks/README.md."""
