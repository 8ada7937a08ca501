"""Throughput benchmarks (a dev tool, not installed with the job): see docs/benchmarks.md."""
