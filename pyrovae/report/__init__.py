"""Figures and reports of the VAE line: a run's report.md and the family's family.md."""

__all__: list[str] = []  # a folder of modules: import from them
