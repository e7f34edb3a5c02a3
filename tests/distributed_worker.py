"""One rank of a two-process ``gloo`` group for tests/io/test_recorder.py.

``python -m tests.distributed_worker RANK WORLD INIT_FILE OUT`` records the statistics of the
batches ``token_batches(...)[RANK::WORLD]`` (this rank's shard), then the same with a label
outside the classes on rank 1 only, and writes what it saw to ``OUT`` (JSON).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch.distributed as dist

from ncanalyze.errors import InputError
from ncanalyze.recorder import record_statistics
from tests.factories import tiny_lm, token_batches


def main(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    model = tiny_lm(vocab=11)
    batches = token_batches(vocab=11, batches=5)
    test = token_batches(vocab=11, batches=3, seed=7)
    rec = record_statistics(model, batches[rank::world], model.head,
                            splits={"test": test[rank::world]})
    s, (ts, td) = rec.stats, rec.splits["test"]
    result = {"counts": np.asarray(s.counts).tolist(), "classes": s.class_ids.tolist(),
              "means": np.asarray(s.means).tolist(),
              "within": np.asarray(s.within_scatter).tolist(),
              "class_scatter": np.asarray(s.class_scatter).tolist(),
              "decisions": [rec.decisions.total, rec.decisions.ncc_correct,
                            rec.decisions.classifier_correct, rec.decisions.mismatch],
              "test_within": np.asarray(ts.within_scatter).tolist(),
              "test_decisions": [td.total, td.ncc_correct, td.classifier_correct, td.mismatch]}
    bad = token_batches(vocab=11, batches=2)
    if rank == 1:
        bad[1][1][0, 0] = 11  # in rank 1's shard only
    try:
        record_statistics(model, bad[rank::world], model.head)
        result["error"] = None
    except InputError as e:
        result["error"] = str(e)
    dist.destroy_process_group()
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
