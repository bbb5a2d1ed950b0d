"""Helpers shared by the tests and the benchmarks, so that neither imports
the other: a real OTLP receiver (receiver.py) and the exporter seen from
outside, a free port, a config file and its /metrics parsed (exporter_io.py).

testkit imports neither `tests` nor `benchmarks` (tests/unit/test_layering.py
checks it), and is not shipped in the wheel.
"""
