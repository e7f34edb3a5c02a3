"""``ncanalyze convert``: a folder of per-epoch .npz/.pt dumps → one run file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ...errors import escape
from ..boundary import say, warn
from ..options import AllowExternalOpt, OutFile, OverwriteOpt

EPILOG = ("Example: ncanalyze convert dumps/ run.h5 --weight-decay 5e-4 --loss mse  "
          "(dumps/epoch_000.npz, epoch_010.npz, … each holding features, labels and "
          "optionally weight, bias; or .pt dicts of tensors).  "
          "ncanalyze convert --statistics run.h5 stats.h5  (a features run reduced to a "
          "statistics run: every command gives the same keys on it)")


def convert(folder: Annotated[Path, typer.Argument(
                help="Folder of per-epoch dumps (epoch_007.npz, ep7.npz, … or .pt); with "
                     "--statistics, a features run file.", show_default=False,
                readable=False)],
            out: OutFile,
            num_classes: Annotated[Optional[int], typer.Option(
                "--num-classes", help="C (default max(labels)+1).")] = None,
            weight_decay: Annotated[Optional[float], typer.Option(
                "--weight-decay", help="Stored as the run's λ (for decompose).")] = None,
            loss: Annotated[Optional[str], typer.Option(
                "--loss", help="Stored as the run's loss attribute (mse, ce, …).")] = None,
            overwrite: OverwriteOpt = False,
            statistics: Annotated[bool, typer.Option(
                "--statistics", help="Reduce the features run FOLDER (a run file) to a "
                                     "statistics run (docs/FORMAT.md).")] = False,
            allow_external: AllowExternalOpt = False) -> int:
    """Convert a folder of per-epoch .npz/.pt dumps into one run file, or (--statistics) a
    features run into a statistics run; numeric scalars (train_loss, lr, …) go to /scalars,
    other entries are listed as ignored. With --statistics every epoch, layer and split is
    reduced."""
    if statistics:
        return _reduce(folder, out, overwrite, allow_external,
                       num_classes=num_classes, weight_decay=weight_decay, loss=loss)
    from ...convert import convert as run_convert

    info = run_convert(folder, out, num_classes=num_classes, weight_decay=weight_decay,
                       loss=loss, overwrite=overwrite)
    eps = info["epochs"]
    say(f"wrote {escape(out)}: {len(eps)} epochs ({eps[0]}…{eps[-1]}), N={info['samples']}, "
        f"P={info['features']}, weight: {'yes' if info['weight'] else 'no'}, "
        f"bias: {'yes' if info['bias'] else 'no'}, scalars: "
        f"{', '.join(info['scalars']) or 'none'}")
    if info["ignored"]:
        warn("ignored (not features, labels, weight, bias or a numeric scalar): " + ", ".join(
            f"{name} ({what})" for name, what in sorted(info["ignored"].items())))
    return 0


def _reduce(source: Path, out, overwrite: bool, allow_external: bool, **attrs) -> int:
    from ...errors import UsageError
    from ...reduce import reduce_run

    given = [f"--{k.replace('_', '-')}" for k, v in attrs.items() if v is not None]
    if given:
        raise UsageError(f"{', '.join(given)}: --statistics keeps the input run's attributes")
    info = reduce_run(source, out, overwrite=overwrite, allow_external=allow_external)
    eps = info["epochs"]
    say(f"wrote {escape(out)}: statistics run of {len(eps)} epochs ({eps[0]}…{eps[-1]}), "
        f"C={info['classes']}, N={info['samples']}, P={info['features']}, layers: "
        f"{escape(', '.join(info['layers']) or 'none')}, splits: "
        f"{escape(', '.join(info['splits']) or 'none')}; {info['input_bytes']:,} → "
        f"{info['output_bytes']:,} bytes")
    if info["skipped_scalars"]:
        warn("scalars not carried (their names are add_statistics parameters): "
             + ", ".join(info["skipped_scalars"]))
    return 0
