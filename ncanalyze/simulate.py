"""The unconstrained features model (UFM) trained by full-batch gradient descent.

The features H are free variables, optimised jointly with the classifier (Mixon et al.; Zhu
et al.; Tirer & Bruna). With N = K·n samples (n per class), targets Y = [e_{y_1} … e_{y_N}]:

* ``mse`` (Tirer & Bruna eq. 5 and 14; Zhou et al.)::

      L = 1/(2N) ‖W H + b 1ᵀ − Y‖² + λ_W/2 ‖W‖² + λ_H/2 ‖H‖² + λ_b/2 ‖b‖²

  with ``bias="none"`` (b = 0), ``"free"`` (λ_b = 0) or ``"decayed"`` (λ_b > 0).
* ``ce``: the same with the cross-entropy loss (1/N) Σ_i CE(W h_i + b, y_i) (Zhu et al. 2021).
* ``extended`` (Tirer & Bruna eq. 24, bias-free, one more layer and a ReLU)::

      L = 1/(2N) ‖W₂ σ(W₁ H₁) − Y‖² + λ_W/2 ‖W₂‖² + λ_W1/2 ‖W₁‖² + λ_H/2 ‖H₁‖²

  written with ``/features`` = H₂ = σ(W₁H₁), ``/weight`` = W₂ and ``/layers/h1`` = H₁,
  ``/layers/pre_relu`` = W₁H₁.

One "epoch" of the written run is one gradient step (the model has a single full batch).
What theory predicts for each setting is in :func:`predicted_geometry` and docs/SIMULATE.md;
:func:`mse_minimizer` gives the closed-form global minimizer of the plain MSE model.

Pure NumPy (float64), vectorised; nothing here depends on the analysis code.

Length: a little above the ~350-line guide because the three models share one gradient-descent
loop, one configuration and one writer call; their gradients are short and read best side
by side.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .errors import UsageError
from .limits import MAX_CLASSES, MAX_CLASSES_X_FEATURES, MAX_EPOCHS, MAX_FEATURES, MAX_SAMPLES
from .memory import BASELINE_BYTES, DEFAULT_FRACTION, available_memory

MODELS = ("mse", "ce", "extended")
BIASES = ("free", "decayed", "none")


@dataclass
class UFMConfig:
    """Settings of one simulation (the ``simulate`` command's options).

    Attributes
    ----------
    model : {"mse", "ce", "extended"}
    bias : {"free", "decayed", "none"}
        Classifier bias; ``extended`` is always bias-free.
    classes, per_class, dim : int
        K, n and the feature dimension d (of H₂ for ``extended``).
    dim1 : int or None
        Dimension of H₁ for ``extended`` (default ``dim``).
    epochs : int
        Gradient steps.
    lr : float
        Step size of plain gradient descent.
    lambda_w, lambda_h, lambda_b, lambda_w1 : float
        Regularisation of W (W₂), H (H₁), b (``decayed`` only) and W₁ (``extended`` only).
    init_scale : float
        Entries start as ``init_scale`` × standard normal.
    saves : int
        About how many gradient steps are written (log-spaced, always step 0 and the last).
    seed : int
    """

    model: str = "mse"
    bias: str = "free"
    classes: int = 4
    per_class: int = 5
    dim: int = 8
    dim1: int | None = None
    epochs: int = 5000
    lr: float = 0.5
    lambda_w: float = 5e-3
    lambda_h: float = 5e-3
    lambda_b: float = 5e-3
    lambda_w1: float = 5e-3
    init_scale: float = 0.1
    saves: int = 40
    seed: int = 0

    def validate(self) -> None:
        if self.model not in MODELS:
            raise UsageError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.bias not in BIASES:
            raise UsageError(f"--bias must be one of {', '.join(BIASES)}, got {self.bias!r}")
        if self.model == "extended" and self.bias != "none":
            raise UsageError("the extended model is bias-free: use --bias none")
        if self.classes < 2:
            raise UsageError("--classes must be ≥ 2")
        for name in ("per_class", "dim", "epochs", "saves"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be ≥ 1")
        if self.dim1 is not None and self.dim1 < 1:
            raise UsageError("--dim1 must be ≥ 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UsageError("--lr must be a positive number")
        for name in ("lambda_w", "lambda_h", "lambda_b", "lambda_w1", "init_scale"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise UsageError(f"--{name.replace('_', '-')} must be a non-negative number")
        if self.seed < 0:
            raise UsageError(f"--seed must be ≥ 0, got {self.seed}")
        self._check_limits()

    def _check_limits(self) -> None:
        """The run's size limits (docs/RELIABILITY.md §1): the file written must be readable."""
        k, n = self.classes, self.classes * self.per_class
        for value, limit, what in (
                (k, MAX_CLASSES, "--classes"),
                (n, MAX_SAMPLES, f"--classes × --per-class = {n} samples"),
                (self.dim, MAX_FEATURES, "--dim"),
                (self.dim1 or 0, MAX_FEATURES, "--dim1"),
                (k * self.dim, MAX_CLASSES_X_FEATURES, f"--classes × --dim = {k * self.dim}"),
                (self.saves, MAX_EPOCHS, "--saves"),
                # steps are epoch numbers, log-spaced in float64: exact up to 2⁵³
                (self.epochs, 2**53, "--steps")):
            if value > limit:
                raise UsageError(f"{what} is above the limit {limit} "
                                 "(docs/RELIABILITY.md, size limits)")


# ---------------------------------------------------------------------- theory
@dataclass(frozen=True)
class MSEMinimizer:
    """Closed-form global minimizer of the plain MSE UFM (Tirer & Bruna Thms 3.1, 3.2).

    At the optimum every h_i equals its class mean and W·[h_1 … h_K] = s·T with T = I
    (bias-free: orthogonal frame) or T = Π = I − 11ᵀ/K (free bias: simplex ETF, b = 1/K).
    ``rank`` is the number of unit singular values of T (K or K−1). Reduced to one scalar
    per singular direction, the loss is (s−1)²/(2K) + s·√(nλ_Wλ_H), minimised by
    ``s = 1 − K√(nλ_Wλ_H)``; when that is ≤ 0 the minimizer is W = 0, H = 0.

    Attributes
    ----------
    zero : bool
        Above the threshold K√(nλ_Wλ_H) ≥ 1: the only minimizer is zero.
    scale : float
        s above (0 when ``zero``).
    w_norm_sq : float
        ‖W‖_F² = rank · s · √(nλ_H/λ_W).
    h_norm_sq : float
        ‖H‖_F² = rank · s · √(λ_W/(nλ_H)) · n (all N columns).
    objective : float
        The minimal value of the loss.
    geometry : str
        ``"orthogonal frame"``, ``"simplex ETF"`` or ``"zero"``.
    """

    zero: bool
    scale: float
    rank: int
    w_norm_sq: float
    h_norm_sq: float
    objective: float
    geometry: str


def mse_minimizer(classes: int, per_class: int, lambda_w: float, lambda_h: float,
                  bias: str = "none") -> MSEMinimizer:
    """The global minimizer's scale and norms for the MSE UFM with bias ``none`` or ``free``.

    Parameters
    ----------
    classes, per_class : int
        K and n.
    lambda_w, lambda_h : float
        Must be > 0 (with a zero λ the infimum is not attained).
    bias : {"none", "free"}

    Returns
    -------
    MSEMinimizer
    """
    if bias not in ("none", "free"):
        raise UsageError("a closed-form minimizer exists for --bias none or free only")
    if lambda_w <= 0 or lambda_h <= 0:
        raise UsageError("the closed form needs λ_W > 0 and λ_H > 0")
    k, n = classes, per_class
    rank = k if bias == "none" else k - 1
    c = math.sqrt(n * lambda_w * lambda_h)
    s = 1.0 - k * c
    if s <= 0:
        return MSEMinimizer(True, 0.0, rank, 0.0, 0.0, rank / (2 * k), "zero")
    w_sq = rank * s * math.sqrt(n * lambda_h / lambda_w)
    h_sq = rank * s * math.sqrt(lambda_w / (n * lambda_h)) * n
    objective = rank * ((s - 1) ** 2 / (2 * k) + s * c)
    geometry = "orthogonal frame" if bias == "none" else "simplex ETF"
    return MSEMinimizer(False, s, rank, w_sq, h_sq, objective, geometry)


def predicted_geometry(config: UFMConfig) -> str:
    """One line: which collapse theory predicts for ``config`` (shown by ``simulate``)."""
    k, n, d = config.classes, config.per_class, config.dim
    if config.model == "mse" and config.bias in ("none", "free") and \
            config.lambda_w > 0 and config.lambda_h > 0:
        m = mse_minimizer(k, n, config.lambda_w, config.lambda_h, config.bias)
        thr = k * math.sqrt(n * config.lambda_w * config.lambda_h)
        if m.zero:
            return (f"zero solution: K·√(nλ_Wλ_H) = {thr:.3g} ≥ 1, so W = 0 and H = 0 "
                    "(Tirer & Bruna Thm 3.1/3.2)")
        need = k if config.bias == "none" else k - 1
        room = "" if d >= need else f" (impossible exactly: dim {d} < {need})"
        if config.bias == "none":
            return (f"orthogonal frame{room}: NC1 → 0, W Wᵀ ∝ I, class means ∝ Wᵀ "
                    f"(of_distance_* → 0), ‖W‖² = {m.w_norm_sq:.4g}, ‖H‖² = {m.h_norm_sq:.4g} "
                    "(Tirer & Bruna Thm 3.1)")
        return (f"simplex ETF{room}: NC1 → 0, centred means and W form a simplex ETF "
                f"(etf_distance_* → 0), b = 1/K, ‖W‖² = {m.w_norm_sq:.4g}, "
                f"‖H‖² = {m.h_norm_sq:.4g} (Tirer & Bruna Thm 3.2)")
    if config.model == "mse" and config.bias == "decayed":
        return ("NC1 → 0; no closed form: neither exact ETF nor OF in general; the centred "
                "means are observed to form a simplex ETF (Tirer & Bruna, remark after Thm 3.2)")
    if config.model == "ce":
        return ("simplex ETF: NC1 → 0, centred means and W form a simplex ETF, self-duality → 0 "
                "(Zhu et al. 2021, cross-entropy UFM with weight decay)")
    if config.model == "extended":
        return ("orthogonal frame: H₂ = σ(W₁H₁) collapses to an orthogonal frame and W₂ is "
                "aligned with it (of_distance_* → 0, NC1 → 0); H₁ collapses too "
                "(Tirer & Bruna Thm 4.2; small λ keep the solution non-zero)")
    return "zero solution (a λ is 0: no regularised minimizer is attained)"


# ---------------------------------------------------------------------- gradient descent
def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=0, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=0, keepdims=True)


def _save_steps(epochs: int, saves: int) -> list[int]:
    """Log-spaced step numbers in 0..epochs, always with 0 and ``epochs``."""
    pts = np.unique(np.round(np.geomspace(1, epochs, max(1, saves - 1))).astype(int))
    return sorted({0, epochs, *pts.tolist()})


class UFM:
    """State and gradient step of one unconstrained features model (columns are samples).

    Parameters
    ----------
    config : UFMConfig
    """

    def __init__(self, config: UFMConfig):
        config.validate()
        self.cfg = c = config
        rng = np.random.default_rng(c.seed)
        k, n, d = c.classes, c.per_class, c.dim
        self.labels = np.repeat(np.arange(k), n)
        self.n_samples = k * n
        self.targets = np.zeros((k, self.n_samples))
        self.targets[self.labels, np.arange(self.n_samples)] = 1.0
        s = c.init_scale
        if c.model == "extended":
            d1 = c.dim1 or d
            self.h = s * rng.standard_normal((d1, self.n_samples))  # H₁
            self.w1 = s * rng.standard_normal((d, d1))
        else:
            self.h = s * rng.standard_normal((d, self.n_samples))
            self.w1 = None
        self.w = s * rng.standard_normal((k, d))
        self.b = s * rng.standard_normal(k) if c.bias != "none" else None

    # -------------------------------------------------------------- forward
    def features(self) -> np.ndarray:
        """Last-layer features, shape (d, N) (H, or σ(W₁H₁) for the extended model)."""
        if self.w1 is None:
            return self.h
        return np.maximum(self.w1 @ self.h, 0.0)

    def logits(self, feats: np.ndarray | None = None) -> np.ndarray:
        z = self.w @ (self.features() if feats is None else feats)
        return z if self.b is None else z + self.b[:, None]

    def objective(self) -> tuple[float, float]:
        """(fit loss, regularised objective) at the current point."""
        c = self.cfg
        z = self.logits()
        if c.model == "ce":
            zs = z - z.max(axis=0, keepdims=True)
            logp = zs - np.log(np.exp(zs).sum(axis=0, keepdims=True))
            fit = -float(logp[self.labels, np.arange(self.n_samples)].mean())
        else:
            fit = 0.5 * float(((z - self.targets) ** 2).sum()) / self.n_samples
        reg = 0.5 * c.lambda_w * float((self.w ** 2).sum()) + \
            0.5 * c.lambda_h * float((self.h ** 2).sum())
        if self.w1 is not None:
            reg += 0.5 * c.lambda_w1 * float((self.w1 ** 2).sum())
        if self.b is not None and c.bias == "decayed":
            reg += 0.5 * c.lambda_b * float((self.b ** 2).sum())
        return fit, fit + reg

    # -------------------------------------------------------------- one step
    def step(self) -> None:
        """One plain gradient-descent step on all variables at once."""
        c, n = self.cfg, self.n_samples
        pre = None if self.w1 is None else self.w1 @ self.h
        feats = self.h if pre is None else np.maximum(pre, 0.0)
        z = self.w @ feats
        if self.b is not None:
            z += self.b[:, None]
        g = (_softmax(z) - self.targets) if c.model == "ce" else (z - self.targets)
        g /= n  # dL/dZ
        grad_w = g @ feats.T + c.lambda_w * self.w
        grad_feats = self.w.T @ g
        grad_b = None
        if self.b is not None:
            grad_b = g.sum(axis=1) + (c.lambda_b * self.b if c.bias == "decayed" else 0.0)
        if pre is None:
            grad_h = grad_feats + c.lambda_h * self.h
        else:
            grad_pre = grad_feats * (pre > 0)
            grad_w1 = grad_pre @ self.h.T + c.lambda_w1 * self.w1
            grad_h = self.w1.T @ grad_pre + c.lambda_h * self.h
            self.w1 -= c.lr * grad_w1
        self.w -= c.lr * grad_w
        self.h -= c.lr * grad_h
        if grad_b is not None:
            self.b -= c.lr * grad_b


def simulate(path, config: UFMConfig, *, overwrite: bool = False,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Train the UFM of ``config`` by gradient descent and write the run to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Run file to write (through :class:`~ncanalyze.io.writer.RunWriter`).
    config : UFMConfig
    overwrite : bool, default False
    progress : callable, optional
        Called as ``progress(step, epochs)`` at every written step.

    Returns
    -------
    dict
        ``{"steps": [...], "objective": final objective, "fit_loss": ..., "prediction": str,
        "config": {...}}``.

    Raises
    ------
    UsageError
        For invalid settings, or when gradient descent diverges (lower ``--lr``).
    """
    config.validate()
    plan_memory(config)
    model = UFM(config)
    c = config
    steps = _save_steps(c.epochs, c.saves)
    from .io.publish import publish_when_done

    # Written under a temporary name and renamed at the end: a diverged or interrupted
    # simulation leaves no partial run behind. The lock keeps a second writer off ``path``.
    with publish_when_done(path, overwrite=overwrite) as tmp:
        _train(model, tmp, steps, progress)
    fit, obj = model.objective()
    return {"steps": steps, "objective": obj, "fit_loss": fit,
            "prediction": predicted_geometry(c), "config": asdict(c)}


def simulation_bytes(config: UFMConfig) -> int:
    """Peak bytes of one gradient step (float64): the K×N targets, logits and gradient (and
    the softmax's temporaries for ``ce``), about eight D×N feature-sized arrays (H, the
    features, their gradients and the copies the writer converts, D = max(d, d₁)), and the
    small K×d and d×d₁ matrices."""
    c = config
    k, n = c.classes, c.classes * c.per_class
    d = max(c.dim, c.dim1 or c.dim)
    per_kn = 5 if c.model == "ce" else 3
    return 8 * (per_kn * k * n + 8 * d * n + 4 * k * c.dim + 4 * c.dim * d) + BASELINE_BYTES


def plan_memory(config: UFMConfig, available: int | None = None) -> None:
    """Refuse a simulation whose working memory exceeds half the available memory.

    Raises
    ------
    UsageError
        Naming what it needs and what is available, before anything is allocated.
    """
    avail = available_memory() if available is None else available
    if avail is None:
        return
    need, allowed = simulation_bytes(config), int(avail * DEFAULT_FRACTION)
    if need > allowed:
        raise UsageError(
            f"--classes {config.classes} --per-class {config.per_class} --dim {config.dim}: "
            f"the simulation needs about {need / 2**30:.2f} GiB of memory, more than the "
            f"{allowed / 2**30:.2f} GiB allowed ({DEFAULT_FRACTION:.0%} of the "
            f"{avail / 2**30:.2f} GiB available); use fewer classes, samples or dimensions")


def _train(model: "UFM", path, steps: list[int], progress) -> None:
    """Run gradient descent, writing the steps in ``steps`` to ``path``."""
    from .io.writer import RunWriter

    c = model.cfg
    wanted = set(steps)
    loss_name = "ce" if c.model == "ce" else "mse"
    # Divergence shows as inf/nan and is reported below as a clear error, not as warnings.
    with RunWriter(path, model.labels, num_classes=c.classes, weight_decay=c.lambda_w,
                   loss=loss_name, overwrite=True) as writer, \
            np.errstate(over="ignore", invalid="ignore"):
        for t in range(c.epochs + 1):
            if t > 0:
                model.step()
            if t not in wanted:
                continue
            fit, obj = model.objective()
            if not (math.isfinite(obj) and np.all(np.isfinite(model.w))):
                raise UsageError(f"gradient descent diverged at step {t}; lower --lr "
                                 f"(now {c.lr})")
            layers = None
            if model.w1 is not None:
                layers = {"h1": model.h.T, "pre_relu": (model.w1 @ model.h).T}
            writer.add_epoch(t, model.features().T, model.w, model.b, layers=layers,
                             objective=obj, fit_loss=fit, lr=c.lr)
            if progress:
                progress(t, c.epochs)
