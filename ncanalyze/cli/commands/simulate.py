"""``ncanalyze simulate``: a run of the unconstrained features model (docs/SIMULATE.md)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ...errors import UsageError, escape
from ..boundary import say, warn
from ..options import OutFile, OverwriteOpt

EPILOG = (
    "Example: ncanalyze simulate ufm.h5 --model mse --bias none --classes 4 --per-class 5 "
    "--dim 8 --steps 5000 && ncanalyze metrics ufm.h5 --epochs last  ·  "
    "Theory: mse + --bias free → simplex ETF (centred means and W; b = 1/K); mse + --bias none → "
    "orthogonal frame (W Wᵀ ∝ I, means ∝ Wᵀ); K·√(n·λ_W·λ_H) ≥ 1 → the zero solution "
    "(W = 0, H = 0); mse + --bias decayed → NC1 → 0, no closed form; ce → simplex ETF; "
    "extended (Linear-ReLU-Linear, bias-free) → the post-ReLU features form an orthogonal frame. "
    "See docs/SIMULATE.md.")


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
             steps: Annotated[int, typer.Option(
                 "--steps", help="Gradient-descent steps (each is written as an epoch).")] = 5000,
             old_epochs: Annotated[Optional[int], typer.Option(
                 "--epochs", hidden=True, help="Deprecated name of --steps.")] = None,
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
             overwrite: OverwriteOpt = False) -> int:
    """Train the unconstrained features model by gradient descent and write a run file; print
    which geometry theory predicts for these settings."""
    options = dict(locals())  # every option but out/overwrite/steps is a UFMConfig field
    from ...simulate import UFMConfig
    from ...simulate import simulate as run_simulation

    out, overwrite = options.pop("out"), options.pop("overwrite")
    options.pop("old_epochs")
    if old_epochs is not None:  # the old name, kept working for scripts
        if steps != 5000:
            raise UsageError("simulate: give --steps only (--epochs is its old name)")
        warn("simulate --epochs is now --steps (it counts gradient-descent steps; --epochs "
             "selects epochs in the other commands); the old name still works")
        steps = old_epochs
    options.pop("steps")
    options["epochs"] = epochs = steps
    cfg = UFMConfig(**options)
    result = run_simulation(out, cfg, overwrite=overwrite)
    say(f"wrote {escape(out)}: {len(result['steps'])} steps of {epochs}, final objective "
        f"{result['objective']:.6g}")
    say(f"theory predicts: {result['prediction']}")
    return 0
