"""The bridge between the two lines: local posteriors p(z|x) of a trained VAE.

The only place where the VAE line (a trained decoder and encoder) meets the
comparison line (MCMC, per-point fits, distances, ArviZ files).
"""

__all__: list[str] = []  # a folder of modules: import from them
