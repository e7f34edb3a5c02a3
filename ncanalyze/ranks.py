"""The ranks of ``torch.distributed`` as the statistics recorder uses them
(:mod:`ncanalyze.recorder`): gather one object from every rank, make every rank fail when one
did (so that no rank waits in a collective), and sum the decision counts. Without an
initialised process group of two or more ranks, :func:`collective` is ``None`` and the
recorder runs alone.
"""

from __future__ import annotations

import operator
from functools import reduce

from .core.decisions import DecisionCounts
from .errors import NcanalyzeError


def collective():
    """``all_gather`` (this rank's object → every rank's, in rank order) when
    torch.distributed is initialised with several ranks, else None."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None

    def gather(obj):
        out = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out

    return gather


def agree(gather, error: NcanalyzeError | None) -> None:
    """Raise on every rank when any rank failed (so no rank waits in a collective)."""
    errors = [error] if gather is None else gather(error)
    for rank, e in enumerate(errors):
        if e is not None:
            where = "" if gather is None else f"rank {rank}: "
            raise type(e)(where + e.reason)


def sum_counts(parts: list[DecisionCounts]) -> DecisionCounts:
    """The decision counts of every rank, summed."""
    return reduce(operator.add, parts)
