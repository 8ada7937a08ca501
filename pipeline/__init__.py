"""The job: options, graph assembly and the entry point (python -m pipeline)."""
