"""Declarative model specs: frozen dataclasses, TOML loading and overrides.

A spec has three tables, ``[data]``, ``[model]`` and ``[train]``; every field
has a default, so an empty spec is the embedded digits VAE. Load one with
:func:`load_spec` (a TOML file) or :func:`spec_from_dict`, change fields with
``key.path=value`` overrides (:func:`apply_overrides`), and write the resolved
spec back with :func:`spec_to_toml`. Every problem raises
:class:`~pyrovae.errors.SpecError` naming the field's dotted path, what was
given and what is allowed.

Examples
--------
>>> spec = load_spec("examples/specs/digits.toml", overrides=["train.epochs=5"])
>>> spec.model.encoder.hidden
(256, 128)
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyrovae import _checks as c
from pyrovae.errors import SpecError

__all__ = [
    "AUTOENCODER_KINDS",
    "COLORS",
    "COLOR_SOURCES",
    "DATA_SOURCES",
    "DOWNLOADABLE_SOURCES",
    "EIGHT_BIT_LIKELIHOODS",
    "FAMILY_KINDS",
    "IWAE_OBJECTIVES",
    "KINDS",
    "LABEL_KINDS",
    "NETWORK_KINDS",
    "AutoencoderSpec",
    "DataSpec",
    "GuideSpec",
    "LikelihoodSpec",
    "ModelSpec",
    "NetworkSpec",
    "PriorSpec",
    "Spec",
    "SyntheticSpec",
    "TrainSpec",
    "apply_overrides",
    "keeps_every_label",
    "load_spec",
    "spec_from_dict",
    "spec_to_dict",
    "spec_to_toml",
    "toml_value",
]

LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "gaussian", "laplace", "discretized_logistic")
BINARY_LIKELIHOODS = ("bernoulli",)
UNIT_INTERVAL_LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "discretized_logistic")
EIGHT_BIT_LIKELIHOODS = ("discretized_logistic",)
"""Likelihoods of pixels that take the 256 values k / 255 (the data must have 256 levels)."""
KINDS = ("vae", "ae", "tied_ae", "denoising_ae", "sparse_ae", "cvae", "m2")
AUTOENCODER_KINDS = ("ae", "tied_ae", "denoising_ae", "sparse_ae")
"""The deterministic ancestors of the VAE: point-mass guides, no prior."""
FAMILY_KINDS = ("vae", *AUTOENCODER_KINDS)
"""The autoencoder family the VAE grew from (``pyrovae family``)."""
LABEL_KINDS = ("cvae", "m2")
"""Models that use the class labels: the conditional VAE p(x|z,y) and the semi-supervised
M2, where y is a latent variable of the examples whose label is hidden."""
IWAE_OBJECTIVES = ("iwae", "iwae_dreg")
"""Objectives that train the k-sample importance-weighted bound."""
NETWORK_KINDS = ("mlp", "conv")
"""Network kinds, one builder each in :mod:`pyrovae.nets` (a test keeps the two in step)."""
DATA_SOURCES = (
    "digits",
    "mnist",
    "fashion_mnist",
    "kmnist",
    "cifar10",
    "image_folder",
    "synthetic",
    "arrays",
)
"""Data sources, one loader each in :mod:`pyrovae.data` (a test keeps the two in step)."""
DOWNLOADABLE_SOURCES = ("mnist", "fashion_mnist", "kmnist", "cifar10")
"""Sources whose official files ``data.download = true`` fetches (md5-checked)."""
COLOR_SOURCES = ("cifar10", "image_folder")
"""Sources whose images ``data.color`` converts."""
COLORS = ("auto", "grayscale", "rgb")
"""Values of ``data.color``."""
_PATH_NEEDS = {
    "mnist": "a folder for the IDX files",
    "fashion_mnist": "a folder for the IDX files",
    "kmnist": "a folder for the IDX files",
    "cifar10": "the cifar-10-batches-py folder or the folder of cifar-10-python.tar.gz",
    "image_folder": "a folder of PNG/JPEG images",
    "arrays": "a .npy/.npz/.csv file",
}
"""What ``data.path`` names, for the sources that need one."""
SEED_MAX = 2**31 - 1
"""The largest seed: ``pyro.set_rng_seed`` (numpy) takes 32 bits, and chains and stages
seed themselves with small offsets from it (seed + 1, seed + chain)."""
ACTIVATIONS = ("relu", "softplus", "tanh", "elu", "gelu", "silu", "leaky_relu", "sigmoid")


def _field(default: Any, check: c.Check, doc: str) -> Any:
    """A dataclass field carrying its check and a one-line description."""
    metadata = {"check": check, "doc": doc}
    if isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class SyntheticSpec:
    """Linear-Gaussian (probabilistic PCA) data: x = W z + b + noise * eps."""

    n: int = _field(5000, c.integer(2), "number of examples, all splits together")
    observed_dim: int = _field(10, c.integer(1), "dimension of x")
    latent_dim: int = _field(2, c.integer(1), "dimension of the true z")
    noise: float = _field(0.5, c.positive_float, "standard deviation of the noise")


@dataclass(frozen=True)
class DataSpec:
    """Where the data come from and how they are split and binarized."""

    name: str = _field("digits", c.choice(*DATA_SOURCES), "data source")
    path: str = _field(
        "",
        c.text,
        "mnist/fashion_mnist/kmnist: folder of IDX files; cifar10: cifar-10-batches-py or "
        "the folder of cifar-10-python.tar.gz; image_folder: folder of PNG/JPEG images "
        "(or of one folder of them per class); arrays: a .npy/.npz/.csv file",
    )
    download: bool = _field(
        False,
        c.boolean,
        "download the official files into path, md5-checked (mnist, fashion_mnist, kmnist, "
        "cifar10)",
    )
    image_size: tuple[int, ...] = _field(
        (),
        c.positive_int_tuple,
        "image_folder: [height, width] every image is resized to (Pillow, LANCZOS); "
        "[]: keep the images' own size, which must then all agree",
    )
    color: str = _field(
        "auto",
        c.choice(*COLORS),
        "image_folder, cifar10: convert images to grayscale (1 channel) or rgb (3); auto: "
        "rgb if any image has colour, else grayscale",
    )
    binarize: str = _field(
        "auto",
        c.choice("auto", "none", "static", "dynamic"),
        "auto: dynamic for a Bernoulli likelihood, none otherwise",
    )
    test_fraction: float = _field(
        0.2, c.fraction(True), "held-out share when the source has no official test split"
    )
    validation_fraction: float = _field(
        0.1, c.fraction(False), "share of the training split kept for validation"
    )
    labels_path: str = _field(
        "", c.text, "arrays: a .npy or one-column .csv file of class labels, one per row"
    )
    labelled: int | float = _field(
        1.0,
        c.count_or_fraction,
        "m2: training examples that keep their label: an integer is a count per class, a "
        "number in (0, 1] a share of the training split (chosen with data.seed)",
    )
    limit: int = _field(0, c.integer(0), "use at most this many training examples (0: all)")
    memory_map: bool = _field(
        False,
        c.boolean,
        "arrays .npy only: read training rows from the file per minibatch instead of loading "
        "it (data larger than memory)",
    )
    seed: int = _field(0, c.integer(0, SEED_MAX), "seed of the split and of static binarization")
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)


@dataclass(frozen=True)
class NetworkSpec:
    """A network: its kind (the builder in :mod:`pyrovae.nets`), hidden layer sizes
    (empty for a linear map) and activation; a ``conv`` network also has its convolutions'
    channels, kernel, stride, padding and normalisation, and ``hidden`` is then its MLP
    head's."""

    kind: str = _field(
        "mlp",
        c.choice(*NETWORK_KINDS),
        "mlp (flattens the data) or conv (convolutions on the images' (C, H, W), then an "
        "MLP head; a decoder mirrors it with transposed convolutions)",
    )
    hidden: tuple[int, ...] = _field(
        (256, 128), c.positive_int_tuple, "hidden sizes (of a conv network's MLP head)"
    )
    activation: str = _field("softplus", c.choice(*ACTIVATIONS), "activation function")
    channels: tuple[int, ...] = _field(
        (32, 64),
        c.positive_int_tuple,
        "conv: channels of each convolution, from the image inward for an encoder and from "
        "the feature map outward for a decoder (defaults [32, 64] and [64, 32]; each "
        "network keeps its own)",
    )
    kernel: int = _field(4, c.integer(1), "conv: kernel size of every convolution")
    stride: int = _field(2, c.integer(1), "conv: stride of every convolution")
    padding: int | str = _field(
        "auto", c.integer_or_choice(0, "auto"), "conv: padding; auto: (kernel - 1) // 2"
    )
    norm: str = _field(
        "none",
        c.choice("none", "group"),
        "conv: normalisation after each hidden convolution: none, or group (GroupNorm with "
        "up to 8 groups)",
    )


@dataclass(frozen=True)
class LikelihoodSpec:
    """The observation model p(x|z)."""

    name: str = _field(
        "bernoulli",
        c.choice(*LIKELIHOODS),
        "observation model; discretized_logistic: 8-bit pixels k/255 (256 levels, e.g. MNIST)",
    )
    scale: str | float = _field(
        "learned",
        c.scale_or_choice("learned", "decoder"),
        "gaussian/laplace scale: a fixed number, 'learned' (one parameter) or "
        "'decoder' (predicted per pixel); the discretized_logistic's is always the decoder's",
    )


@dataclass(frozen=True)
class PriorSpec:
    """The prior p(z)."""

    name: str = _field(
        "normal",
        c.choice("normal", "vamp"),
        "normal: N(0, scale^2 I); vamp: the VampPrior (1/K) sum_k q(z|u_k) over K learned "
        "pseudo-inputs u_k",
    )
    scale: float = _field(1.0, c.positive_float, "normal: prior standard deviation")
    components: int = _field(
        100, c.integer(1), "vamp: K, the number of pseudo-inputs (initialised from training data)"
    )


@dataclass(frozen=True)
class GuideSpec:
    """The amortized variational family q(z|x)."""

    name: str = _field("diagonal_normal", c.choice("diagonal_normal"), "N(mu(x), diag sigma(x)^2)")


@dataclass(frozen=True)
class AutoencoderSpec:
    """Settings of the autoencoder kinds (ignored by the VAE)."""

    corruption: str = _field(
        "mask",
        c.choice("mask", "gaussian"),
        "denoising_ae: mask (set a share of pixels to 0) or gaussian (add noise)",
    )
    corruption_level: float = _field(
        0.3, c.non_negative_float, "denoising_ae: share of pixels masked, or the noise sd"
    )
    sparsity_target: float = _field(
        0.05, c.fraction(False), "sparse_ae: rho, the target mean activation of each code unit"
    )
    sparsity_weight: float = _field(
        3.0, c.non_negative_float, "sparse_ae: weight of sum_j KL(rho || rho_hat_j)"
    )


@dataclass(frozen=True)
class ModelSpec:
    """The generative model, its networks and the guide."""

    kind: str = _field(
        "vae",
        c.choice(*KINDS),
        "vae; a label model: cvae (p(x|z,y)), m2 (semi-supervised, y latent where hidden); "
        "or an autoencoder: ae, tied_ae, denoising_ae, sparse_ae",
    )
    latent_dim: int = _field(2, c.integer(1), "dimension of z")
    encoder: NetworkSpec = field(default_factory=NetworkSpec)
    decoder: NetworkSpec = field(
        default_factory=lambda: NetworkSpec(hidden=(128, 256), channels=(64, 32))
    )
    likelihood: LikelihoodSpec = field(default_factory=LikelihoodSpec)
    prior: PriorSpec = field(default_factory=PriorSpec)
    guide: GuideSpec = field(default_factory=GuideSpec)
    autoencoder: AutoencoderSpec = field(default_factory=AutoencoderSpec)


@dataclass(frozen=True)
class TrainSpec:
    """How the model is fitted with SVI."""

    objective: str = _field(
        "elbo",
        c.choice("elbo", "analytic_kl", *IWAE_OBJECTIVES),
        "elbo: Trace_ELBO; analytic_kl: TraceMeanField_ELBO; iwae: k-sample bound; "
        "iwae_dreg: the same bound with doubly reparameterised encoder gradients",
    )
    particles: int = _field(1, c.integer(1), "samples of z per example (k for iwae)")
    epochs: int = _field(300, c.integer(1), "passes over the training split")
    batch_size: int = _field(128, c.integer(1), "examples per step")
    lr: float = _field(1e-3, c.positive_float, "Adam learning rate (the peak, with a schedule)")
    lr_schedule: str = _field(
        "constant",
        c.choice("constant", "cosine"),
        "cosine: anneal lr to 1% of itself over the epochs, or over max_seconds when that "
        "binds first",
    )
    beta: float = _field(1.0, c.non_negative_float, "weight of the KL term")
    kl_warmup_epochs: int = _field(0, c.integer(0), "epochs over which beta rises from 0")
    seed: int = _field(0, c.integer(0, SEED_MAX), "seed of initialisation and sampling")
    early_stopping_patience: int = _field(
        0, c.integer(0), "stop after this many epochs without a better validation ELBO (0: off)"
    )
    max_seconds: float = _field(
        0.0, c.non_negative_float, "stop after the epoch that ends past this training time (0: off)"
    )
    device: str = _field("cpu", c.choice("cpu", "cuda", "auto"), "where to train")
    threads: int = _field(
        0,
        c.integer(0),
        "CPU threads for torch (0: auto, the cores this process may use, at most "
        "PYROVAE_MAX_THREADS)",
    )
    jit: bool = _field(
        True,
        c.boolean,
        "trace each minibatch shape's training step once (torch.jit.trace) and replay it: "
        "the same values and gradients with less Python per step (iwae_dreg stays eager)",
    )
    classifier_weight: float = _field(
        0.1,
        c.non_negative_float,
        "m2: alpha / N, the weight of log q(y|x) on labelled examples per training example "
        "(Kingma et al. 2014 use alpha = 0.1 N)",
    )
    labelled_per_batch: int = _field(
        0,
        c.integer(0),
        "m2: labelled examples in every minibatch (0: their share of the training split, at "
        "least 1); the plates weight both kinds so the loss still estimates the full ELBO",
    )
    tensorboard: bool = _field(
        False,
        c.boolean,
        "also write TensorBoard event files under RUN_DIR/tensorboard: per epoch the "
        "history's scalars, the learning rate, the validation ELBO's parts and KL per latent "
        "dimension, reconstructions and samples (needs the tensorboard package)",
    )


@dataclass(frozen=True)
class Spec:
    """A whole model spec: data, model and training."""

    name: str = _field("digits-vae", c.text, "name of the run")
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)


# --------------------------------------------------------------------- loading


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key(key: Any) -> str:
    """A key as it would appear in a path: bare if it can be, else quoted like TOML."""
    key = str(key)
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text_value: str) -> str:
    """A TOML basic string on one line: quotes, backslashes and every character that is
    not printable (controls, DEL, line and paragraph separators) escaped."""
    return '"' + "".join(_escape(ch) for ch in text_value) + '"'


_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\b": "\\b",
    "\f": "\\f",
}


def _escape(ch: str) -> str:
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    if ch.isprintable():
        return ch
    return f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"


def _build(default: Any, raw: Any, path: str) -> Any:
    """Check ``raw`` (a dict) against the dataclass instance ``default``; return a
    copy of ``default`` with the given fields replaced (so a partly given table
    keeps the defaults of its own field, e.g. the decoder's hidden sizes)."""
    if not isinstance(raw, dict):
        raise SpecError(path, f"expected a table, got {c.show(raw)}")
    fields = {f.name: f for f in dataclasses.fields(default)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            valid = ", ".join(fields)
            raise SpecError(_join(path, _key(key)), f"unknown key{hint} (valid: {valid})")
    values = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        sub = _join(path, name)
        current = getattr(default, name)
        if dataclasses.is_dataclass(current):
            values[name] = _build(current, raw[name], sub)
        else:
            values[name] = f.metadata["check"](raw[name], sub)
    return dataclasses.replace(default, **values)


def spec_from_dict(raw: dict[str, Any]) -> Spec:
    """Build and validate a :class:`Spec` from nested dicts (e.g. parsed TOML).

    Fields left out take their defaults; nested tables are merged with the
    defaults field by field.
    """
    spec = _build(Spec(), raw, "")
    _check_consistency(spec)
    return spec


def _check_consistency(spec: Spec) -> None:
    """Checks that involve more than one field."""
    t, d, m = spec.train, spec.data, spec.model
    if t.objective in IWAE_OBJECTIVES and (t.beta != 1.0 or t.kl_warmup_epochs):
        raise SpecError(
            "train.beta" if t.beta != 1.0 else "train.kl_warmup_epochs",
            f"the {t.objective} objective bounds log p(x) only with beta = 1 and no KL warm-up; "
            "use objective = 'elbo' for a beta-VAE",
        )
    _check_data_source(d)
    if d.memory_map and (d.name != "arrays" or Path(d.path).suffix.lower() != ".npy"):
        raise SpecError(
            "data.memory_map", "only data.name = 'arrays' with a .npy file can be memory-mapped"
        )
    if d.memory_map and d.binarize == "static":
        raise SpecError(
            "data.memory_map",
            "a memory-mapped file cannot be binarized once ahead; use data.binarize = 'dynamic'",
        )
    if d.memory_map and m.kind in LABEL_KINDS:
        raise SpecError(
            "data.memory_map",
            f"model.kind = '{m.kind}' needs its rows with a class column in memory; "
            "use memory_map = false",
        )
    binary = d.binarize in ("static", "dynamic")
    if binary and m.likelihood.name not in BINARY_LIKELIHOODS:
        raise SpecError(
            "data.binarize",
            f"binarized data need a Bernoulli likelihood, got model.likelihood.name = "
            f"'{m.likelihood.name}'; use binarize = 'none' or 'auto'",
        )
    if m.likelihood.scale != "learned" and m.likelihood.name not in ("gaussian", "laplace"):
        always = m.likelihood.name in EIGHT_BIT_LIKELIHOODS
        raise SpecError(
            "model.likelihood.scale",
            f"only gaussian and laplace likelihoods have a scale, not '{m.likelihood.name}'"
            + ("; its scale is always predicted by the decoder, so leave it out" if always else ""),
        )
    _check_networks(m)
    if m.kind in AUTOENCODER_KINDS:
        _check_autoencoder(spec)
    _check_labels(spec)
    _check_prior(spec)


_CONV_FIELDS = ("channels", "kernel", "stride", "padding", "norm")


def _check_networks(m: ModelSpec) -> None:
    """Convolution settings only on conv networks, and at least one convolution there."""
    defaults = ModelSpec()
    for role, net, default in (
        ("encoder", m.encoder, defaults.encoder),
        ("decoder", m.decoder, defaults.decoder),
    ):
        if net.kind == "conv" and not net.channels:
            raise SpecError(
                f"model.{role}.channels",
                "a conv network needs at least one convolution; give e.g. [32, 64] or use "
                "kind = 'mlp'",
            )
        if net.kind != "conv":
            for name in _CONV_FIELDS:
                if getattr(net, name) != getattr(default, name):
                    raise SpecError(
                        f"model.{role}.{name}",
                        f"only a conv network has {name}; set model.{role}.kind = 'conv' or "
                        "leave it out",
                    )


def _check_data_source(d: DataSpec) -> None:
    """A path where the source needs one; download, image size and colour only for the
    sources that use them."""
    if d.name in _PATH_NEEDS and not d.path:
        raise SpecError("data.path", f"data.name = '{d.name}' needs {_PATH_NEEDS[d.name]}, got ''")
    if d.download and d.name not in DOWNLOADABLE_SOURCES:
        listed = ", ".join(DOWNLOADABLE_SOURCES)
        raise SpecError(
            "data.download", f"only {listed} can be downloaded, not '{d.name}'; set it false"
        )
    if len(d.image_size) not in (0, 2):
        raise SpecError(
            "data.image_size",
            f"expected [] or [height, width], got {list(d.image_size)}",
        )
    if d.image_size and d.name != "image_folder":
        raise SpecError(
            "data.image_size",
            f"only data.name = 'image_folder' resizes images, not '{d.name}'; set it to []",
        )
    if d.color != "auto" and d.name not in COLOR_SOURCES:
        raise SpecError(
            "data.color",
            f"only {' and '.join(COLOR_SOURCES)} convert colours, not '{d.name}'; set it to 'auto'",
        )


def keeps_every_label(labelled: int | float) -> bool:
    """Whether ``data.labelled`` keeps every training label: the share 1.0 (an integer 1
    is one label per class)."""
    return isinstance(labelled, float) and labelled == 1.0


def _check_labels(spec: Spec) -> None:
    """Label fields used only where a model uses labels; M2's sum over classes."""
    d, m, t = spec.data, spec.model, spec.train
    if d.labels_path and d.name != "arrays":
        raise SpecError(
            "data.labels_path",
            f"only the arrays source reads a labels file, "
            f"not '{d.name}' (its labels come with the data)",
        )
    if not keeps_every_label(d.labelled) and m.kind != "m2":
        raise SpecError(
            "data.labelled",
            f"only the semi-supervised model.kind = 'm2' hides labels; got '{m.kind}'",
        )
    if t.labelled_per_batch and m.kind != "m2":
        raise SpecError(
            "train.labelled_per_batch",
            f"only model.kind = 'm2' mixes labelled and unlabelled examples; got '{m.kind}'",
        )
    if t.labelled_per_batch >= t.batch_size:
        raise SpecError(
            "train.labelled_per_batch",
            f"leaves no room for unlabelled examples in a batch of {t.batch_size}; use less",
        )
    if t.classifier_weight != TrainSpec.classifier_weight and m.kind != "m2":
        raise SpecError(
            "train.classifier_weight",
            f"only model.kind = 'm2' has a classifier q(y|x); got '{m.kind}'",
        )
    if m.kind in LABEL_KINDS and m.prior.name != "normal":
        raise SpecError(
            "model.prior.name",
            f"model.kind = '{m.kind}' takes the normal prior, got '{m.prior.name}'",
        )
    if m.kind == "m2" and (t.objective != "elbo" or t.particles != 1):
        field_ = "train.objective" if t.objective != "elbo" else "train.particles"
        raise SpecError(
            field_,
            "model.kind = 'm2' sums its class out exactly with TraceEnum_ELBO, which trains "
            "the single-sample 'elbo' (particles = 1)",
        )


def _check_prior(spec: Spec) -> None:
    """Each prior's own fields, and objectives that need a closed-form KL."""
    p = spec.model.prior
    if p.name == "normal" and p.components != PriorSpec.components:
        raise SpecError(
            "model.prior.components", "only the vamp prior has components; set name = 'vamp'"
        )
    if p.name == "vamp" and p.scale != 1.0:
        raise SpecError(
            "model.prior.scale", "only the normal prior has a scale; the vamp prior learns its own"
        )
    if p.name == "vamp" and spec.train.objective == "analytic_kl":
        raise SpecError(
            "train.objective",
            "the vamp prior has no closed-form KL from q; use 'elbo', 'iwae' or 'iwae_dreg'",
        )


def _check_autoencoder(spec: Spec) -> None:
    """An autoencoder's guide is a point mass and it has no prior: no KL term."""
    t, m = spec.train, spec.model
    kind = f"model.kind = '{m.kind}'"
    if m.prior.name != "normal":
        raise SpecError(
            "model.prior.name", f"{kind} has a flat prior; the '{m.prior.name}' prior needs a vae"
        )
    if t.objective != "elbo":
        raise SpecError(
            "train.objective",
            f"{kind} has a point-mass guide, so every objective equals its reconstruction "
            f"loss; use 'elbo', got '{t.objective}'",
        )
    if t.particles != 1:
        raise SpecError(
            "train.particles",
            f"{kind} has a point-mass guide, so every particle is the same; use 1, "
            f"got {t.particles}",
        )
    if t.beta != 1.0 or t.kl_warmup_epochs:
        name = "train.beta" if t.beta != 1.0 else "train.kl_warmup_epochs"
        raise SpecError(name, f"{kind} has no KL term to weight; leave it at its default")
    a = m.autoencoder
    if m.kind == "denoising_ae" and a.corruption == "mask" and a.corruption_level >= 1:
        raise SpecError(
            "model.autoencoder.corruption_level",
            f"a mask corruption needs a share in [0, 1), got {a.corruption_level}",
        )
    if m.kind == "tied_ae":
        _check_tied(m)


def _check_tied(m: ModelSpec) -> None:
    e, d = m.encoder, m.decoder
    if d.kind != e.kind:
        raise SpecError(
            "model.decoder.kind",
            f"a tied_ae's decoder is its encoder transposed, so it is also '{e.kind}'; "
            f"got '{d.kind}'",
        )
    if e.kind == "conv":
        _check_tied_conv(e, d)
    mirror = tuple(reversed(m.encoder.hidden))
    if m.decoder.hidden != mirror:
        raise SpecError(
            "model.decoder.hidden",
            f"a tied_ae's decoder is its encoder transposed, so its hidden sizes are the "
            f"encoder's reversed: {list(mirror)}; got {list(m.decoder.hidden)}",
        )
    if m.encoder.hidden and m.decoder.activation != m.encoder.activation:
        raise SpecError(
            "model.decoder.activation",
            f"a tied_ae's decoder uses the encoder's activation '{m.encoder.activation}', "
            f"got '{m.decoder.activation}'",
        )
    if m.likelihood.name in EIGHT_BIT_LIKELIHOODS:
        raise SpecError(
            "model.likelihood.name",
            f"a tied_ae's decoder emits one number per pixel (the transposed first layer), "
            f"but '{m.likelihood.name}' needs a location and a scale per pixel; use another "
            "likelihood or model.kind = 'ae'",
        )
    if m.likelihood.scale == "decoder":
        raise SpecError(
            "model.likelihood.scale",
            "a tied_ae's decoder emits one number per pixel (the transposed first layer), "
            "so it cannot also predict scales; use 'learned' or a number",
        )


def _check_tied_conv(e: NetworkSpec, d: NetworkSpec) -> None:
    """A tied conv decoder runs the encoder's kernels backwards: the same geometry."""
    mirror = tuple(reversed(e.channels))
    if d.channels != mirror:
        raise SpecError(
            "model.decoder.channels",
            f"a tied_ae's transposed convolutions are the encoder's, so its channels are "
            f"the encoder's reversed: {list(mirror)}; got {list(d.channels)}",
        )
    if e.norm != "none":
        raise SpecError(
            "model.encoder.norm",
            "a tied_ae shares only its kernels, not normalisation layers; use norm = 'none'",
        )
    for name in ("kernel", "stride", "padding", "norm"):
        if getattr(d, name) != getattr(e, name):
            raise SpecError(
                f"model.decoder.{name}",
                f"a tied_ae's decoder uses the encoder's kernels, so its {name} is the "
                f"encoder's {getattr(e, name)!r}; got {getattr(d, name)!r}",
            )


def load_spec(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Spec:
    """Load a spec from a TOML file (or the defaults when ``path`` is None).

    Parameters
    ----------
    path : str or Path or None
        TOML file; None gives the embedded digits default.
    overrides : list of str
        ``key.path=value`` strings applied after loading; values are read as
        TOML values (``[256,128]``, ``1e-3``, ``true``); a bare word is a string.

    Raises
    ------
    SpecError
        When the file is missing, unreadable or not TOML (named in the message), or
        any field is invalid (its dotted path named).
    """
    raw = {} if path is None else _read_toml(Path(path))
    return spec_from_dict(apply_overrides(raw, overrides))


def _read_toml(path: Path) -> dict[str, Any]:
    """The parsed TOML file; SpecError (naming the file) when it cannot be read or parsed."""
    try:
        data = path.read_bytes() if path.is_file() else None
    except OSError as err:  # unreadable, or a name too long
        raise SpecError("", f"cannot read spec file {str(path)!r}: {_one_line(err)}") from None
    if data is None:
        raise SpecError("", f"spec file {str(path)!r} does not exist")
    try:
        # drop a byte-order mark (some editors write one); newlines as Path.read_text reads them
        text_value = data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
        return tomllib.loads(text_value)
    except (ValueError, RecursionError) as err:  # TOMLDecodeError, bad bytes, huge ints
        raise SpecError("", f"{path} is not valid TOML: {_one_line(err)}") from None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _parse_value(text_value: str, key: str) -> Any:
    """A TOML value; text that is not one TOML value is taken as a bare string.

    ``key`` (the field's path, as the user wrote it) is named when the value looks
    like TOML but cannot be read (an integer of over 4300 digits, absurd nesting).
    """
    try:
        parsed = tomllib.loads(f"v = {text_value}")
    except tomllib.TOMLDecodeError:
        return text_value
    except (ValueError, RecursionError) as err:  # valid-looking but absurd values
        message = f"cannot read the --set value {c.show(text_value)}: {_one_line(err)}"
        raise SpecError(key, message) from None
    # "5\nlr = 3" parses as a document with more in it than the one value
    return parsed["v"] if list(parsed) == ["v"] else text_value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``key.path=value`` overrides applied.

    Unknown keys are not caught here but by :func:`spec_from_dict`, so the
    message (with its suggestion) is the same as for a key in a file.
    """
    out = _copy_tree(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise SpecError("--set", f"expected key.path=value (e.g. train.epochs=5), got {item!r}")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(_key(p) for p in parts[: i + 1])
                raise SpecError(where, f"is a value, not a table ({key.strip()!r})")
            node = child
        node[parts[-1]] = _parse_value(value.strip(), ".".join(_key(p) for p in parts))
    return out


def _copy_tree(raw: Any) -> Any:
    """A copy of nested dicts and lists, made without recursion: a TOML header such as
    ``[a.a.a...]`` can nest tables deeper than Python's recursion limit."""
    root = _shallow_copy(raw)
    todo = [root]
    while todo:
        node = todo.pop()
        for k, v in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(v, dict | list):
                node[k] = _shallow_copy(v)
                todo.append(node[k])
    return root


def _shallow_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    return list(value) if isinstance(value, list) else value


# --------------------------------------------------------------------- writing


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The spec as nested dicts of TOML-friendly values (tuples become lists)."""

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, tuple | list):
            return [convert(v) for v in value]
        return value

    return convert(dataclasses.asdict(spec))


def toml_value(value: Any) -> str:
    """One field's value as TOML text.

    Parameters
    ----------
    value : bool, int, float, str or list of them
        A resolved field value (tuples already turned into lists).

    Returns
    -------
    str
        ``true``/``false``, a number, a basic string with every unprintable character
        escaped (so it stays on one line and reads back unchanged), or an array.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def spec_to_toml(spec: Spec) -> str:
    """Render the resolved spec as TOML that :func:`load_spec` reads back unchanged."""
    lines: list[str] = []

    def table(d: dict[str, Any], prefix: str) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        if prefix:
            lines.append(f"\n[{prefix}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in scalars.items())
        for k, v in d.items():
            if isinstance(v, dict):
                table(v, _join(prefix, k))

    table(spec_to_dict(spec), "")
    return "\n".join(lines).lstrip() + "\n"
