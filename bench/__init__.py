"""Benchmarks: each runs with one command, prints a table and writes a PNG chart."""
