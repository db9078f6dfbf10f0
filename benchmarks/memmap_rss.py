"""Data larger than memory: peak resident memory of training on a memory-mapped .npy file.

Writes a uint8 ``.npy`` file of 32 x 32 x 3 random images (``--gb`` GB, in chunks of
64 MB so that writing it holds no more) and trains a small Bernoulli MLP VAE
(3072-256-16, dynamic binarization, batch 128) on it with ``data.memory_map = true`` for
``--steps`` minibatches drawn from one shuffled epoch over the whole file (rows from
anywhere in it, the worst case for reading). Loading checks the whole file in chunks
and reads the validation and test rows (``data.test_fraction`` 0.002, no validation)
into memory. Then, in the same process, with the peak reset (``/proc/self/clear_refs``):

- ``baseline``: the same training on a smaller file (``--baseline-gb``) loaded into
  memory, as without ``memory_map``;
- ``mmap_scan``: the big file read once through ``np.load(mmap_mode="r")``, chunk by
  chunk, to show what reading through a memory map would cost instead of the
  positional reads that the row store makes: the touched pages count in ``RssFile``.

Usage (from the project root)::

    python benchmarks/memmap_rss.py [--gb 4] [--steps 200] [--baseline-gb 0.25] [--path DIR]

Prints ``name=value`` lines: for each part its peak resident memory (``VmHWM``) and the
``RssAnon`` / ``RssFile`` of the process at its end, in MB (10^6 bytes), the file size,
``growth_mb=`` (the peak above what the process held at the start: Python, torch and
pyrovae imported) and ``rss_over_file=`` (the memory-mapped run's whole peak over its
file's size), printed last. The files are written in a temporary folder (or ``--path``) and deleted
afterwards.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pyrovae.data import load_data
from pyrovae.pipeline import build
from pyrovae.spec import Spec, load_spec
from pyrovae.train import fit

IMAGE = (3, 32, 32)
CHUNK_BYTES = 64 * 10**6
MB = 10**6


def memory() -> dict[str, float]:
    """``VmHWM``, ``RssAnon`` and ``RssFile`` of this process, in MB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) * 1024 / MB
    return out


def reset_peak() -> None:
    """Set ``VmHWM`` back to the current resident size (Linux 4.0 and later)."""
    Path("/proc/self/clear_refs").write_text("5")


def write_images(path: Path, gb: float, seed: int = 0) -> int:
    """A uint8 (N, 3, 32, 32) .npy file of about ``gb`` GB, written chunk by chunk;
    returns N."""
    row = int(np.prod(IMAGE))
    n = max(2, int(gb * 10**9) // row)
    rng = np.random.default_rng(seed)
    header = {"descr": "|u1", "fortran_order": False, "shape": (n, *IMAGE)}
    step = max(1, CHUNK_BYTES // row)
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for first in range(0, n, step):
            rows = min(step, n - first)
            f.write(rng.integers(0, 256, size=rows * row, dtype=np.uint8).tobytes())
    return n


def spec_for(path: Path, memory_map: bool) -> Spec:
    return load_spec(
        None,
        [
            "data.name=arrays",
            f"data.path={str(path)!r}",
            f"data.memory_map={str(memory_map).lower()}",
            "data.test_fraction=0.002",
            "data.validation_fraction=0.0",
            "model.likelihood.name=bernoulli",
            "model.latent_dim=16",
            "model.encoder.hidden=[256]",
            "model.decoder.hidden=[256]",
            "train.epochs=1",
            "train.batch_size=128",
            "train.threads=1",
        ],
    )


def train(path: Path, memory_map: bool, steps: int) -> tuple[int, float]:
    """Load ``path`` and take ``steps`` training steps; (steps taken, seconds)."""
    start = time.perf_counter()
    spec = spec_for(path, memory_map)
    data = load_data(spec.data, spec.model.likelihood.name)
    vae = build(spec, data.dim)
    taken = [0]

    def enough() -> bool:  # asked after every step
        taken[0] += 1
        return taken[0] >= steps

    fit(vae, data, spec.train, progress=False, should_stop=enough)
    return taken[0], time.perf_counter() - start


def report(name: str, values: dict[str, float]) -> None:
    for key, value in values.items():
        print(f"{name}_{key}={value:.1f}" if name else f"{key}={value:.1f}", flush=True)


def scan_through_mmap(path: Path) -> dict[str, float]:
    """Read every value of the file through a read-only memory map, chunk by chunk; the
    process's memory while the map is still open."""
    x = np.load(path, mmap_mode="r")
    step = max(1, CHUNK_BYTES // int(np.prod(x.shape[1:])))
    for first in range(0, len(x), step):
        x[first : first + step].sum(dtype=np.uint64)
    return memory()


def timed(what: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = what()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=4.0, help="size of the memory-mapped file")
    parser.add_argument("--steps", type=int, default=200, help="training steps of each run")
    parser.add_argument("--baseline-gb", type=float, default=0.25, help="in-memory file size")
    parser.add_argument("--path", default=None, help="folder for the files (default: a temp one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.path) as folder:
        big, small = Path(folder) / "big.npy", Path(folder) / "small.npy"
        start = memory()
        report("start", start)
        resident = start["RssAnon"] + start["RssFile"]
        _, seconds = timed(lambda: write_images(big, args.gb))
        size = big.stat().st_size
        print(f"file_gb={size / 10**9:.2f}")
        print(f"write_seconds={seconds:.1f}")
        report("after_write", memory())
        reset_peak()
        steps, seconds = train(big, memory_map=True, steps=args.steps)
        mapped = memory()
        print(f"steps={steps}")
        print(f"seconds={seconds:.1f}")
        report("", mapped)
        print(f"growth_mb={mapped['VmHWM'] - resident:.1f}")

        write_images(small, args.baseline_gb, seed=1)
        small_size = small.stat().st_size
        reset_peak()
        steps, seconds = train(small, memory_map=False, steps=args.steps)
        baseline = memory()
        print(f"baseline_file_gb={small_size / 10**9:.2f}")
        print(f"baseline_seconds={seconds:.1f}")
        report("baseline", baseline)
        print(f"baseline_growth_mb={baseline['VmHWM'] - resident:.1f}")
        print(f"baseline_rss_over_file={baseline['VmHWM'] * MB / small_size:.3f}")

        reset_peak()
        scanned, seconds = timed(lambda: scan_through_mmap(big))
        print(f"mmap_scan_seconds={seconds:.1f}")
        assert isinstance(scanned, dict)
        report("mmap_scan", scanned)
        print(f"rss_over_file={mapped['VmHWM'] * MB / size:.3f}")  # the headline, last


if __name__ == "__main__":
    main()
