"""Inference engines for small posteriors: MCMC, autoguide fits, pointwise log-likelihoods."""

__all__: list[str] = []  # a folder of modules: import from them
