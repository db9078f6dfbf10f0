"""The posterior-comparison line: small posteriors, every method on them, and the verdicts.

targets/     what is sampled: the built-in zoo, posteriordb, users' Pyro models
inference/   the engines: MCMC kernels, autoguide fits, pointwise log-likelihoods
methods/     the registry of comparison methods by name (one file per implementation)
diagnostics/ every posterior as ArviZ InferenceData: converters, NetCDF, checks, LOO, overlays
distances, compare, plots, tables, files: measuring draws against a reference and writing it
"""

__all__: list[str] = []  # a folder of modules: import from them
