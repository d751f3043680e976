"""Benchmarks for Wool; see ``benchmarks/README.md``."""
