"""Numerical building blocks that both lines use: closed forms and sample distances."""

__all__: list[str] = []  # a folder of modules: import from them
