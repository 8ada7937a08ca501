"""Reusable stages of the job, one module each: read, decode, inference, format, write."""
