"""``ncanalyze inspect``: layout, sizes, dtypes, epochs, class counts and problems of a file."""

from __future__ import annotations

from .errors import InputError
from .follow import writer_active
from .io.describe import describe_layout
from .io.reader import open_run
from .lock import writer_lock_state


def inspect_file(path, *, allow_external: bool = False) -> dict:
    """Describe a run file; validation failures are listed under ``"problems"``.

    Raises
    ------
    InputError
        Only when the file cannot be opened as HDF5 at all.
    """
    report = describe_layout(path)
    report["problems"] = []
    try:
        with open_run(path, allow_external=allow_external) as run:
            info = run.info
            counts = run.class_counts()
            report["run"] = {
                "kind": info.kind,
                "format_version": info.format_version,
                "classes": info.num_classes,
                "samples": info.num_samples,
                "features": info.num_features,
                "features_dtype": run.train.feature_dtype,
                "epochs": [int(e) for e in info.epochs],
                "has_weight": info.has_weight,
                "has_bias": info.has_bias,
                "weight_decay": info.weight_decay,
                "loss": info.loss,
                "scalars": info.scalars,
                "layers": {k: v.num_features for k, v in info.layers.items()},
                "splits": {k: v.num_samples for k, v in info.splits.items()},
                "class_counts": [int(c) for c in counts],
                "balanced": bool(counts.min() == counts.max()),
            }
            if info.kind == "statistics":
                report["run"]["feature_dtypes"] = {
                    "train": run.train.feature_dtype,
                    **{f"layers/{k}": v.feature_dtype for k, v in info.layers.items()},
                    **{f"splits/{k}": v.feature_dtype for k, v in info.splits.items()}}
                report["run"]["labels_stored"] = run.train.labels_path is not None
            if info.epochs.size == 0:
                report["problems"].append("no complete epoch (/epoch is empty)")
            if info.num_features >= info.num_samples - info.num_classes:  # either kind
                report["problems"].append(
                    f"P = {info.num_features} ≥ N − C = {info.num_samples - info.num_classes}: "
                    "Σ_W is singular (snr: computed on its support, infinite when a class-mean "
                    "direction has no within-class noise)")
    except InputError as exc:
        report["problems"].append(exc.one_line())
    report["writing"] = _writing(path, report)
    return report


def _writing(path, report: dict) -> dict | None:
    """Whether the file is still marked open for writing and whether its writer is alive."""
    if not writer_active(path):
        return None
    state, pid = writer_lock_state(path)
    epochs = (report.get("run") or {}).get("epochs") or []
    last = f"epoch {epochs[-1]}" if epochs else "no complete epoch"
    who = f"process {pid}" if pid else "a process"
    text = {
        "held": f"open for writing: its writer ({who}) holds the lock and is alive; last "
                f"complete epoch: {last}",
        "stale": f"still marked open for writing, but no writer holds its lock: the writer "
                 f"({who}) died without closing it after {last} (the complete epochs are "
                 f"readable; --follow on it ends at --timeout with exit 3)",
        "none": f"open for writing by a writer without a RunWriter lock (alive or not is "
                f"unknown); last complete epoch: {last}",
    }[state]
    if state == "stale":
        report["problems"].append(text)
    return {"open": True, "lock": state, "pid": pid, "status": text}
