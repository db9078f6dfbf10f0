"""Data: where examples come from, how they are checked, split and binarized.

:func:`load_data` turns a :class:`~pyrovae.spec.DataSpec` into a :class:`Dataset`;
each source (``digits``, ``mnist`` / ``fashion_mnist`` / ``kmnist``, ``cifar10``,
``image_folder``, ``synthetic``, ``arrays``) is one module, registered by name in
:data:`SOURCES`. With ``data.memory_map`` a ``.npy`` file's training rows are read from
disk per minibatch (:mod:`pyrovae.data.disk`).
"""

from pyrovae.data.dataset import SOURCES, Dataset, binarize, load_data
from pyrovae.data.idx import (
    IDX_DATASETS,
    MNIST_FILES,
    MNIST_MIRRORS,
    download_idx,
    download_mnist,
    read_idx,
)
from pyrovae.data.source import LinearGaussianTruth

__all__ = [
    "IDX_DATASETS",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "SOURCES",
    "Dataset",
    "LinearGaussianTruth",
    "binarize",
    "download_idx",
    "download_mnist",
    "load_data",
    "read_idx",
]
