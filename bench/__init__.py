"""Benchmarks run by `make bench` (not tests: they measure, and write bench/results/)."""
