"""What decoding compressed chunks may allocate, in total (issue 16 item 4,
docs/RELIABILITY.md threat model).

Every compressed dataset gets a chunk cache as large as one row of its chunks (so nothing is
decoded twice in a pass), and those caches stay allocated while the run is open: a small
file with many compressed scalars of huge chunks made memory grow with their number (12 of
them: 3.2 GB from a 3.2 MB file). The caches of one file now have a total limit
(``trust.MAX_DECODE_BYTES``), a file above it is refused with one line, and the memory plan
counts what is within it.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ncanalyze import open_run
from ncanalyze.errors import InputError
from ncanalyze.io import trust
from tests.conftest import run_cli
from tests.factories import E, valid_members, write_h5

BIG = 2**25  # float64 elements: one 256 MiB chunk, within the limit of one chunk


def _scalars(tmp_path, count, written=()):
    """``count`` compressed scalars of one 256 MiB chunk each; those in ``written`` hold
    0, 1, 2 (the others were never written: nothing to decode, the same caches)."""
    path = write_h5(tmp_path / "run.h5", valid_members())
    with h5py.File(path, "a") as f:
        for i in range(count):
            ds = f.create_dataset(f"scalars/z{i:02d}", shape=(E,), maxshape=(None,),
                                  chunks=(BIG,), dtype="f8", compression="gzip",
                                  compression_opts=1)
            if i in written:
                ds[:] = np.arange(E, dtype="f8")
    return path


def test_many_compressed_scalars_with_huge_chunks_are_refused(tmp_path):
    path = _scalars(tmp_path, 12)
    assert path.stat().st_size < 8 * 2**20
    with pytest.raises(InputError, match="in all") as info:
        open_run(path)
    assert "h5repack" in str(info.value)
    result = run_cli("metrics", path, "-f", "json")
    assert result.exit_code == 3 and result.stderr.count("\n") == 1, result.stderr


def test_decoding_within_the_limit_is_read_and_planned(tmp_path):
    path = _scalars(tmp_path, 2, written=(1,))
    with open_run(path) as run:
        assert run.decode_bytes == 2 * BIG * 8
        assert run.decode_bytes <= trust.MAX_DECODE_BYTES
        assert run.scalars(2)["z01"] == 1.0
    result = run_cli("metrics", path, "-f", "json", "--memory-limit", "600000000")
    assert result.exit_code == 3 and "decoding" in result.stderr, result.stderr
