"""The tests' only oracle: deliberately straightforward float64 implementations of the
formulas of docs/METRICS.md, and the one tolerance comparer.

No streaming, no shifting tricks, explicit loops over classes and pairs: the obvious reading
of each formula, to compare the real implementation against.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest


def reference_metrics(H, y, W=None, b=None, C=None, global_mean="samples",
                      center_weights=False, ncc_means=None, ncc_classes=None):
    """docs/METRICS.md literally. Classes without samples are left out of every class-indexed
    key (K = the classes present plays C's role there); the decisions use all C rows of W.
    ``ncc_means`` (with ``ncc_classes``, their class indices) replace the NCC rule's means."""
    H = np.asarray(H, dtype=np.float64)
    y = np.asarray(y)
    N, P = H.shape
    C = int(y.max()) + 1 if C is None else C
    counts = np.array([np.sum(y == c) for c in range(C)])
    present = np.flatnonzero(counts > 0)
    K = present.size
    n = counts[present].astype(np.float64)
    mu = np.stack([H[y == c].mean(axis=0) for c in present])  # (K, P)
    muG = H.mean(axis=0) if global_mean == "samples" else mu.mean(axis=0)
    Mbar = (mu - muG).T  # (P, K)
    M = mu.T
    SW = np.zeros((P, P))
    for i in range(N):
        d = H[i] - mu[np.searchsorted(present, y[i])]
        SW += np.outer(d, d)
    SW /= N
    U, s, _ = np.linalg.svd(Mbar, full_matrices=False)
    r = int(np.sum(s > max(P, K) * np.finfo(np.float64).eps * s[0]))
    r = min(r, K - 1, P)
    SB_pinv = K * U[:, :r] @ np.diag(1.0 / s[:r] ** 2) @ U[:, :r].T
    out = {"nc1": np.trace(SW @ SB_pinv) / K, "nc1_rank": r}
    out["nc1_trace_ratio"] = np.trace(SW) / np.trace(Mbar @ Mbar.T / K)

    sig2 = np.array([np.sum((H[y == c] - mu[j]) ** 2) / n[j] for j, c in enumerate(present)])
    pairs = list(itertools.combinations(range(K), 2))
    out["cdnv"] = np.mean([(sig2[a] + sig2[b_]) / (2 * np.sum((mu[a] - mu[b_]) ** 2))
                           for a, b_ in pairs])

    def cos(u, v):
        return u @ v / (np.linalg.norm(u) * np.linalg.norm(v))

    def norms_cv(V):
        nr = np.linalg.norm(V, axis=1)
        return np.std(nr, ddof=1) / np.mean(nr)

    def etf(G):
        Pi = np.eye(K) - np.ones((K, K)) / K
        return np.linalg.norm(G / np.linalg.norm(G) - Pi / np.sqrt(K - 1))

    def of(G):
        return np.linalg.norm(G / np.linalg.norm(G) - np.eye(K) / np.sqrt(K))

    def log_kernel(V):
        U_ = V / np.linalg.norm(V, axis=1, keepdims=True)
        return np.array([np.log(1.0 / np.linalg.norm(U_[a] - U_[b_])) for a, b_ in pairs])

    cent = mu - muG
    cm = [cos(cent[a], cent[b_]) for a, b_ in pairs]
    out["equinorm_means"] = norms_cv(cent)
    out["equiangle_means"] = np.std(cm, ddof=1) if len(cm) > 1 else None
    out["maxangle_means"] = np.mean([abs(c + 1 / (K - 1)) for c in cm])
    out["etf_distance_means"] = etf(Mbar.T @ Mbar)
    out["of_distance_means"] = of(M.T @ M)
    lk = log_kernel(cent)
    out["gnc2"] = np.var(lk)
    out["gnc2_energy"] = np.mean(lk)
    out["classes_present"] = K
    out["class_count_min"] = int(n.min())
    out["class_count_max"] = int(n.max())
    pi = n / N
    out["effective_classes"] = np.exp(-np.sum(pi * np.log(pi)))
    if ncc_means is None:
        nm, ids = mu, present
    else:
        nm = np.asarray(ncc_means, dtype=np.float64)
        ids = np.arange(nm.shape[0]) if ncc_classes is None else np.asarray(ncc_classes)
    ncc = np.array([ids[np.argmin([np.sum((h - m) ** 2) for m in nm])] for h in H])
    out["ncc_accuracy"] = np.mean(ncc == y)
    if W is not None:
        Wall = np.asarray(W, dtype=np.float64)
        ball = np.zeros(C) if b is None else np.asarray(b, dtype=np.float64)
        W, bb = Wall[present], ball[present]
        cw = [cos(W[a], W[b_]) for a, b_ in pairs]
        out["equinorm_weights"] = norms_cv(W)
        out["equiangle_weights"] = np.std(cw, ddof=1) if len(cw) > 1 else None
        out["maxangle_weights"] = np.mean([abs(c + 1 / (K - 1)) for c in cw])
        lw = log_kernel(W)
        out["gnc2_weights"] = np.var(lw)
        out["gnc2_energy_weights"] = np.mean(lw)
        We = W - W.mean(axis=0) if center_weights else W
        out["etf_distance_weights"] = etf(We @ We.T)
        out["of_distance_weights"] = of(W @ W.T)
        out["self_duality"] = np.linalg.norm(W.T / np.linalg.norm(W)
                                             - Mbar / np.linalg.norm(Mbar)) ** 2
        WM = W @ Mbar
        Pi = np.eye(K) - np.ones((K, K)) / K
        out["nc3_etf"] = np.linalg.norm(WM / np.linalg.norm(WM) - Pi / np.sqrt(K - 1))
        WM0 = W @ M
        out["nc3_of"] = np.linalg.norm(WM0 / np.linalg.norm(WM0) - np.eye(K) / np.sqrt(K))
        out["bias_collapse"] = np.linalg.norm(W @ muG + bb)
        dual = np.array([cos(W[j], cent[j]) for j in range(K)])
        out["unc3"] = np.std(dual, ddof=1)
        out["duality_mean"] = np.mean(dual)
        pred = np.array([np.argmax(Wall @ h + ball) for h in H])
        out["accuracy"] = np.mean(pred == y)
        out["ncc_mismatch"] = np.mean(pred != ncc)
    return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in out.items()}


def reference_decompose(h, y, weight, bias, lam, c):
    """The MSE decomposition (docs/METRICS.md; Han et al. Theorems 1–2) written out literally: per-sample sums, np.linalg.solve / pinv."""
    h = np.asarray(h, dtype=np.float64)
    n, p = h.shape
    ht = np.hstack([h, np.ones((n, 1))]) if bias is not None else h
    wt = np.hstack([weight, bias[:, None]]) if bias is not None else np.asarray(weight)
    d = ht.shape[1]
    onehot = np.eye(c)[y]
    a = np.zeros((d, d))
    for i in range(n):
        a += np.outer(ht[i], ht[i])
    a = a / n + lam * np.eye(d)
    b = onehot.T @ ht / n
    if np.linalg.matrix_rank(a) == d:
        w_ls = np.linalg.solve(a, b.T).T
    else:
        w_ls = b @ np.linalg.pinv(a, hermitian=True)

    def loss(x):
        r = ht @ x.T - onehot
        return 0.5 * np.mean(np.sum(r * r, axis=1)) + 0.5 * lam * np.sum(x * x)

    present = [k for k in range(c) if np.any(y == k)]
    mu = {k: ht[y == k].mean(axis=0) for k in present}
    sw = np.zeros((d, d))
    for i in range(n):
        dev = ht[i] - mu[y[i]]
        sw += np.outer(dev, dev)
    sw /= n
    nc1 = 0.5 * np.trace(w_ls @ (sw + lam * np.eye(d)) @ w_ls.T)
    nc23 = 0.5 * sum(np.mean(y == k) * np.sum((w_ls @ mu[k] - np.eye(c)[k]) ** 2)
                     for k in present)
    delta = wt - w_ls
    perp = 0.5 * np.trace(delta @ a @ delta.T)
    total = loss(wt)
    return {"loss": total, "loss_ls": loss(w_ls), "loss_nc1": nc1, "loss_nc23": nc23,
            "loss_ls_perp": perp, "central_path_ratio": perp / total}, w_ls


def assert_close(actual: dict, expected: dict, rtol=1e-6, atol=1e-9, keys=None):
    keys = keys if keys is not None else expected.keys()
    for k in keys:
        e, a = expected[k], actual.get(k)
        if e is None:
            assert a is None, f"{k}: expected null, got {a}"
            continue
        assert a is not None, f"{k}: missing/null, expected {e}"
        assert abs(a - e) <= atol + rtol * abs(e), f"{k}: {a!r} vs reference {e!r}"


def assert_values_close(actual: dict, expected: dict, rtol=1e-6, atol=1e-9):
    """One epoch's values: the same keys; floats (and float lists) within tolerance, everything
    else (ints, None, nested dicts) equal."""
    assert actual.keys() == expected.keys()
    scalar = [k for k, v in expected.items() if isinstance(v, float)]
    assert_close(actual, expected, rtol=rtol, atol=atol, keys=scalar)
    for k, v in expected.items():
        if isinstance(v, list):
            np.testing.assert_allclose(actual[k], v, rtol=rtol, atol=atol, err_msg=k)
        elif not isinstance(v, float):
            assert actual[k] == v, k


def assert_snr_close(got: dict, want: dict, rtol=1e-6):
    """SNR keys against :func:`reference_snr`: the min(P, C − 1) singular values that can be
    nonzero to ``rtol`` (the others are 0 by construction and not reported)."""
    assert len(got["snr_singular_values"]) == len(want["snr_singular_values"])
    np.testing.assert_allclose(got["snr_singular_values"], want["snr_singular_values"],
                               rtol=rtol)
    for k in ("snr_min", "snr_max", "snr_ratio", "nc1_whitened", "loss_ls_predicted"):
        assert got[k] == pytest.approx(want[k], rel=rtol), k


def reference_snr(H, y, C=None, global_mean="samples", ridge=0.0):
    """The SNR keys (docs/CENTRAL_PATH.md §2) literally: Σ_W^{-1/2} by eigendecomposition, then
    the SVD of Σ_W^{-1/2} M̄. Σ_W (+ ridge·I) must be positive definite: for features with
    dead units pass the reduced space (the live columns), where it is.
    """
    H = np.asarray(H, dtype=np.float64)
    y = np.asarray(y)
    N, P = H.shape
    C = int(y.max()) + 1 if C is None else C
    means = np.stack([H[y == c].mean(axis=0) for c in range(C)])
    muG = H.mean(axis=0) if global_mean == "samples" else means.mean(axis=0)
    Mbar = (means - muG).T
    SW = np.zeros((P, P))
    for i in range(N):
        d = H[i] - means[y[i]]
        SW += np.outer(d, d)
    SW = SW / N + ridge * np.eye(P)
    ev, U = np.linalg.eigh(SW)
    assert ev.min() > 0, "reference_snr needs a positive definite Σ_W (reduce the space)"
    omega = np.zeros(C)
    s = np.linalg.svd(U @ np.diag(ev**-0.5) @ U.T @ Mbar, compute_uv=False)
    omega[: s.size] = s
    nz = omega[: C - 1]  # ω_{C−1} = 0: M̄π = 0
    r = min(P, C - 1)  # M̄ has rank ≤ r: ω_j = 0 for j ≥ r
    with np.errstate(divide="ignore"):
        return {"snr_singular_values": omega[:r], "snr_min": nz[r - 1], "snr_max": omega[0],
                "snr_ratio": omega[0] / nz[r - 1], "nc1_whitened": np.sum(nz[:r]**-2.0),
                "loss_ls_predicted": 0.5 * np.sum(1.0 / (C + nz**2))}
