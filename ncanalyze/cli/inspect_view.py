"""Rich rendering of ``ncanalyze inspect``."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import escape


def _cell(value) -> Text:
    """A table cell shown literally: controls escaped, rich markup not interpreted."""
    return Text(escape(value))


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def print_inspection(report: dict, console: Console) -> None:
    """Print the layout table, the run summary and the problems found."""
    console.print(Text(escape(report["file"]), style="bold"),
                  f" ({_size(report['size_bytes'])})")
    if report["attrs"]:
        console.print(escape("attributes: " + ", ".join(f"{k}={v!r}"
                                                        for k, v in report["attrs"].items())),
                      markup=False)
    table = Table(show_edge=False, header_style="bold")
    width = max([len(escape(m["path"])) for m in report["members"]] + [4])
    # Below 100 columns the kind and chunk columns go (a group says so in the shape column),
    # so that every cell is shown whole in an 80-column terminal.
    wide = console.width >= 100
    table.add_column("path", no_wrap=True, min_width=width)
    columns = ("kind", "shape", "dtype", "chunks", "filters", "size") if wide else (
        "shape", "dtype", "filters", "size")
    for col in columns:
        table.add_column(col, no_wrap=True)
    for m in report["members"]:
        if m["kind"] == "dataset":
            cells = {"kind": "dataset", "shape": "×".join(map(str, m["shape"])) or "scalar",
                     "dtype": _cell(m["dtype"]),
                     "chunks": "×".join(map(str, m["chunks"])) if m["chunks"] else "contiguous",
                     "filters": _cell(",".join(m["filters"]) or "-"),
                     "size": _size(m["nbytes"])}
        else:
            cells = {"kind": _cell(m["kind"]), "shape": "" if wide else _cell(m["kind"]),
                     "dtype": "", "chunks": "", "filters": "",
                     "size": _cell(m.get("target", ""))}
        table.add_row(_cell(m["path"]), *(cells[c] for c in columns))
    console.print(table)
    if not wide:
        console.print("(chunk shapes: -f json, or a terminal of 100 columns or more)",
                      style="dim", markup=False)
    run = report.get("run")
    if run:
        if run.get("kind") == "statistics":
            console.print(escape(
                f"statistics run (format {run['format_version'] or '?'}): per-epoch class "
                "counts, means, N·Σ_W, per-class sums of squares and decision counts; no "
                "per-sample features (docs/FORMAT.md); labels "
                f"{'stored' if run['labels_stored'] else 'not stored'}; features were "
                + ", ".join(f"{k} {v}" for k, v in run["feature_dtypes"].items())),
                markup=False)
        ep = run["epochs"]
        shown = (", ".join(map(str, ep)) if len(ep) <= 8
                 else f"{ep[0]}, {ep[1]}, …, {ep[-1]} ({len(ep)} epochs)")
        console.print(f"classes C={run['classes']} · samples N={run['samples']} · features "
                      f"P={run['features']} ({run['features_dtype']}) · epochs: {shown}")
        console.print(escape(f"classifier: {'W' if run['has_weight'] else 'none'}"
                             f"{' + b' if run['has_bias'] else ''} · loss: {run['loss'] or '?'} · "
                             f"weight_decay: {run['weight_decay']}"), markup=False)
        counts = run["class_counts"]
        head = ", ".join(map(str, counts[:20])) + (" …" if len(counts) > 20 else "")
        console.print(f"class counts ({'balanced' if run['balanced'] else 'imbalanced'}, "
                      f"min {min(counts)}, max {max(counts)}): {head}")
        for kind in ("scalars", "layers", "splits"):
            if run[kind]:
                names = run[kind] if isinstance(run[kind], list) else dict(run[kind])
                console.print(escape(f"{kind}: {names}"), markup=False)
    writing = report.get("writing")
    if writing and writing["lock"] != "stale":  # a dead writer is listed with the problems
        console.print(escape(writing["status"]), style="yellow", markup=False)
    if report["problems"]:
        console.print("[bold red]problems:[/bold red]")
        for p in report["problems"]:
            console.print(f"  • {escape(p)}", markup=False)
    else:
        console.print("[green]no problems found[/green]")
