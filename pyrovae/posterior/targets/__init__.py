"""Targets of a comparison: built-in models, posteriordb posteriors, users' own Pyro models."""

__all__: list[str] = []  # a folder of modules: import from them
