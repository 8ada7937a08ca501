"""Throughput benchmarks (a dev tool, not installed with the job): see BENCHMARKS.md."""
