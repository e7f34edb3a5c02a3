"""Working-memory plan of one epoch: estimate before computing, size the tiles, or refuse.

The model (docs/PERFORMANCE.md, "Memory model"): with C classes (K of them present), P
features and N rows, one epoch holds

* the classifier: W and b in float64 plus their float32 copy for scoring (12·C·P bytes);
* per-class arrays of the present classes (statistics, means, NCC vectors, the rows of W
  for the metrics, the decomposition's class points): about 12 arrays of K·P float64;
* P×P matrices (Σ_W, products, factorisations): about 10 of P² float64;
* the row chunks in flight and the second-pass cache (bounded, see ``CACHE_BYTES``) and the
  labels (3·N int64);
* one tile of the pairwise reductions or of the decision scores: what is left of the budget,
  between ``MIN_TILE_BYTES`` and ``MAX_TILE_BYTES``;
* the chunk caches of the compressed datasets read (``Run.decode_bytes``, bounded in all by
  :data:`ncanalyze.io.trust.MAX_DECODE_BYTES`).

Nothing grows as C², rows × C or with N beyond the labels, so the estimate is known from
the file's header. When even the smallest tile does not fit, the analysis stops at once with
one line saying what it needs and what is available, instead of failing later.
"""

from __future__ import annotations

import os

from .errors import InputError

#: Default share of the available memory a run may plan to use.
DEFAULT_FRACTION = 0.5
MIN_TILE_BYTES = 4 * 2**20
MAX_TILE_BYTES = 256 * 2**20
#: The interpreter, NumPy, h5py and their buffers.
BASELINE_BYTES = 200 * 2**20


def available_memory() -> int | None:
    """Memory available to this process now, in bytes, or None when unknown: the system's
    available memory (Linux ``MemAvailable``), less when an address-space limit
    (``ulimit -v``, RLIMIT_AS) leaves this process less room."""
    avail = _meminfo("/proc/meminfo", "MemAvailable:")
    if avail is None:
        try:
            avail = int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            avail = None
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            used = _meminfo("/proc/self/status", "VmSize:") or 0
            room = max(0, soft - used)
            avail = room if avail is None else min(avail, room)
    except (ImportError, OSError, ValueError):
        pass
    return avail


def _meminfo(path: str, key: str) -> int | None:
    """A ``key: N kB`` line of a /proc file, in bytes."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def estimate(*, classes: int, present: int, features: int, samples: int, chunk_bytes: int,
             cache_bytes: int, decode_bytes: int = 0) -> dict[str, int]:
    """Bytes of each part of one epoch's working memory (without the tile); ``decode_bytes``
    is what the chunk caches of compressed datasets may hold (``Run.decode_bytes``)."""
    c, k, p, n = classes, present, features, samples
    return {
        "classifier": 12 * c * p + 12 * c,
        "class arrays": 12 * 8 * k * (p + 1),
        "P×P matrices": 10 * 8 * p * p,
        "rows": 4 * chunk_bytes + cache_bytes + 3 * 8 * n,
        "baseline": BASELINE_BYTES,
        "decoding": decode_bytes,
    }


def plan(parts: dict[str, int], limit: int | None, *, what: str) -> int:
    """Tile bytes that fit ``limit`` (default a fraction of the available memory).

    Raises
    ------
    InputError
        When the fixed parts and the smallest tile exceed the limit.
    """
    fixed = sum(parts.values())
    if limit is None:
        avail = available_memory()
        if avail is None:
            return MAX_TILE_BYTES // 4
        limit = int(avail * DEFAULT_FRACTION)
        source = f"{DEFAULT_FRACTION:.0%} of the {_gib(avail)} available"
    else:
        source = "--memory-limit"
    room = limit - fixed
    if room < MIN_TILE_BYTES:
        top = max(parts, key=parts.get)
        raise InputError(f"{what} needs about {_gib(fixed + MIN_TILE_BYTES)} of working memory "
                         f"(largest part: {top}, {_gib(parts[top])}), more than the "
                         f"{_gib(limit)} allowed ({source}); raise --memory-limit or use a "
                         "machine with more memory")
    return int(min(MAX_TILE_BYTES, max(MIN_TILE_BYTES, room // 2)))


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB"


def plan_epoch(info, present: int, *, chunk_rows: int | None, limit: int | None,
               cache_bytes: int, decode_bytes: int = 0) -> int:
    """Tile bytes of one epoch of the run ``info`` (a :class:`~ncanalyze.io.schema.RunInfo`).

    Parameters
    ----------
    present : int
        The most classes with samples in any source read (K).
    chunk_rows : int or None
        ``--chunk-rows`` (default: one accumulation block).
    limit : int or None
        ``--memory-limit`` in bytes.
    cache_bytes : int
        The most bytes a pass keeps between its two passes.
    decode_bytes : int
        What the chunk caches of compressed datasets may hold (``RunReader.decode_bytes``).

    Raises
    ------
    InputError
        When one epoch cannot fit (see :func:`plan`).
    """
    import numpy as np

    from .core.accumulator import block_rows

    itemsize = np.dtype(info.features_dtype).itemsize
    rows = min(chunk_rows or block_rows(info.num_features), info.num_samples)
    chunk = rows * info.num_features * max(itemsize, 4)
    cache = min(cache_bytes, info.num_samples * (info.num_features * itemsize + 8))
    samples = info.num_samples
    if info.kind == "statistics":  # no rows are read: N costs no memory
        samples = chunk = cache = 0
    parts = estimate(classes=info.num_classes, present=present, features=info.num_features,
                     samples=samples, chunk_bytes=chunk, cache_bytes=cache,
                     decode_bytes=decode_bytes)
    return plan(parts, limit, what=f"{info.path}: one epoch (C = {info.num_classes}, "
                                    f"P = {info.num_features}, N = {info.num_samples})")
