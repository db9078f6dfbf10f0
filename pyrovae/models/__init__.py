"""Models: the VAE (and, later, the autoencoder family and the small-model zoo)."""

from pyrovae.models.vae import VAE

__all__ = ["VAE"]
