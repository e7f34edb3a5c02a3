"""The researcher's-workflow commands: ``plot``, ``simulate`` and ``convert``.

Registered on the main Typer app by :func:`register` (called from :mod:`ncanalyze.cli.app`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..analysis import Settings
from ..errors import escape
from .app import (AllowExternalOpt, BackendOpt, DebugOpt, EpochsOpt, GlobalMeanOpt, QuietOpt,
                  RunFile, err_console, handle_errors)

OutFile = Annotated[Path, typer.Argument(help="Run file to write (HDF5).", show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")]

PLOT_EPILOG = ("Example: ncanalyze plot examples/digits_mlp.h5 -o nc.png  ·  "
               "ncanalyze plot mse.h5 --compare ce.h5 --label MSE --label CE -o mse_vs_ce.pdf")
SIMULATE_EPILOG = (
    "Example: ncanalyze simulate ufm.h5 --model mse --bias none --classes 4 --per-class 5 "
    "--dim 8 --epochs 5000 && ncanalyze metrics ufm.h5 --epochs last  ·  "
    "Theory: mse + --bias free → simplex ETF (centred means and W; b = 1/K); mse + --bias none → "
    "orthogonal frame (W Wᵀ ∝ I, means ∝ Wᵀ); K·√(n·λ_W·λ_H) ≥ 1 → the zero solution "
    "(W = 0, H = 0); mse + --bias decayed → NC1 → 0, no closed form; ce → simplex ETF; "
    "extended (Linear-ReLU-Linear, bias-free) → the post-ReLU features form an orthogonal frame. "
    "See docs/SIMULATE.md.")
CONVERT_EPILOG = ("Example: ncanalyze convert dumps/ run.h5 --weight-decay 5e-4 --loss mse  "
                  "(dumps/epoch_000.npz, epoch_010.npz, … each holding features, labels and "
                  "optionally weight, bias; or .pt dicts of tensors)")


def plot(file: RunFile,
         output_path: Annotated[Path, typer.Option("--output", "-o", help="Figure file: .png, "
                                                   ".svg or .pdf (written atomically).")],
         compare: Annotated[Optional[list[Path]], typer.Option(
             "--compare", help="Overlay another run (repeatable), e.g. the CE twin of an MSE "
                               "run.")] = None,
         label: Annotated[Optional[list[str]], typer.Option(
             "--label", help="Legend label per run, in order (repeatable; default: file "
                             "names).")] = None,
         title: Annotated[Optional[str], typer.Option("--title", help="Figure title.")] = None,
         xscale: Annotated[str, typer.Option(
             "--xscale", help="Epoch axis: auto (log when epochs span ≥ 2 decades), linear, "
                              "log.")] = "auto",
         epochs: EpochsOpt = None, backend: BackendOpt = "auto",
         global_mean: GlobalMeanOpt = "samples", allow_external: AllowExternalOpt = False,
         quiet: QuietOpt = False, debug: DebugOpt = False):
    """Draw the standard NC panel over epochs (Papyan et al. style): accuracy, NC1, equinorm,
    equiangularity, maximal angle, self-duality, NCC mismatch, ETF/OF distances."""
    from ..atomic import check_outputs
    from ..plots.panel import plot_runs

    settings = Settings(("metrics",), backend=backend, global_mean=global_mean,
                        allow_external=allow_external)
    paths = [file, *(compare or [])]
    check_outputs({"--output": output_path}, paths)
    plot_runs(paths, output_path, labels=label, epochs=epochs, settings=settings, title=title,
              xscale=xscale)
    if not quiet:
        err_console.print(f"ncanalyze: wrote {escape(output_path)}", markup=False)


def simulate(out: OutFile,
             model: Annotated[str, typer.Option(
                 "--model", help="mse, ce, or extended (W₂·ReLU(W₁H₁), Tirer & Bruna).")] = "mse",
             bias: Annotated[str, typer.Option(
                 "--bias", help="Classifier bias: free (not regularised), decayed "
                                "(λ_b), none.")] = "free",
             classes: Annotated[int, typer.Option("--classes", help="K.")] = 4,
             per_class: Annotated[int, typer.Option("--per-class", help="n.")] = 5,
             dim: Annotated[int, typer.Option("--dim", help="Feature dimension d.")] = 8,
             dim1: Annotated[Optional[int], typer.Option(
                 "--dim1", help="extended: dimension of H₁ (default --dim).")] = None,
             epochs: Annotated[int, typer.Option(
                 "--epochs", help="Gradient-descent steps (one step = one epoch).")] = 5000,
             lr: Annotated[float, typer.Option("--lr", help="Step size.")] = 0.5,
             lambda_w: Annotated[float, typer.Option("--lambda-w", help="λ_W (W₂).")] = 5e-3,
             lambda_h: Annotated[float, typer.Option("--lambda-h", help="λ_H (H₁).")] = 5e-3,
             lambda_b: Annotated[float, typer.Option(
                 "--lambda-b", help="λ_b with --bias decayed.")] = 5e-3,
             lambda_w1: Annotated[float, typer.Option(
                 "--lambda-w1", help="extended: λ of W₁.")] = 5e-3,
             init_scale: Annotated[float, typer.Option(
                 "--init-scale", help="Initial entries: scale × N(0, 1).")] = 0.1,
             saves: Annotated[int, typer.Option(
                 "--saves", help="About how many (log-spaced) steps to write.")] = 40,
             seed: Annotated[int, typer.Option("--seed")] = 0,
             overwrite: OverwriteOpt = False, quiet: QuietOpt = False, debug: DebugOpt = False):
    """Train the unconstrained features model by gradient descent and write a run file; print
    which geometry theory predicts for these settings."""
    from ..simulate import UFMConfig
    from ..simulate import simulate as run_simulation

    cfg = UFMConfig(model=model, bias=bias, classes=classes, per_class=per_class, dim=dim,
                    dim1=dim1, epochs=epochs, lr=lr, lambda_w=lambda_w, lambda_h=lambda_h,
                    lambda_b=lambda_b, lambda_w1=lambda_w1, init_scale=init_scale, saves=saves,
                    seed=seed)
    result = run_simulation(out, cfg, overwrite=overwrite)
    typer.echo(f"wrote {escape(out)}: {len(result['steps'])} steps of {epochs}, final objective "
               f"{result['objective']:.6g}")
    typer.echo(f"theory predicts: {result['prediction']}")


def convert(folder: Annotated[Path, typer.Argument(
                help="Folder of per-epoch dumps (epoch_007.npz, ep7.npz, … or .pt).",
                show_default=False)],
            out: OutFile,
            num_classes: Annotated[Optional[int], typer.Option(
                "--num-classes", help="C (default max(labels)+1).")] = None,
            weight_decay: Annotated[Optional[float], typer.Option(
                "--weight-decay", help="Stored as the run's λ (for decompose).")] = None,
            loss: Annotated[Optional[str], typer.Option(
                "--loss", help="Stored as the run's loss attribute (mse, ce, …).")] = None,
            overwrite: OverwriteOpt = False, quiet: QuietOpt = False, debug: DebugOpt = False):
    """Convert a folder of per-epoch .npz/.pt dumps into one run file."""
    from ..convert import convert as run_convert

    info = run_convert(folder, out, num_classes=num_classes, weight_decay=weight_decay,
                       loss=loss, overwrite=overwrite)
    eps = info["epochs"]
    typer.echo(f"wrote {escape(out)}: {len(eps)} epochs ({eps[0]}…{eps[-1]}), N={info['samples']}, "
               f"P={info['features']}, weight: {'yes' if info['weight'] else 'no'}, "
               f"bias: {'yes' if info['bias'] else 'no'}")


def register(app: typer.Typer) -> None:
    """Add ``plot``, ``simulate`` and ``convert`` to ``app``."""
    app.command("plot", epilog=PLOT_EPILOG)(handle_errors(plot))
    app.command("simulate", epilog=SIMULATE_EPILOG)(handle_errors(simulate))
    app.command("convert", epilog=CONVERT_EPILOG)(handle_errors(convert))
