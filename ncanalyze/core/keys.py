"""The catalogue of per-epoch output keys: one row per key, pure data.

Everything else about a key is derived from its row: the output order and key tuples of each
quantity (:data:`METRIC_KEYS`, :data:`FEATURE_KEYS`, :data:`LAYER_KEYS`,
:data:`DECOMPOSE_KEYS`, :data:`SNR_KEYS`, :data:`LIST_KEYS`), the keys ``--fail-if`` accepts
(:mod:`ncanalyze.gates`), the headings of the table view and the "best" column of the markdown
summary (:mod:`ncanalyze.cli`), and ``ncanalyze keys``. docs/METRICS.md and
docs/CENTRAL_PATH.md give the formulas; tests check that they list the same keys.

Adding a scalar key: compute it in its formula's module (``values.set("name", …)``), add its
row here in output order, and give tests/reference.py a value for it (the contract test
``tests/core/test_key_catalogue.py`` fails until all three agree).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: The table view's headings, in reading order (a key's ``family`` is one of them).
FAMILIES = (
    "NC1 · within-class variability",
    "NC2 · class means and classifier rows",
    "NC3 · self-duality",
    "NC4 · decisions",
    "many classes (Wu & Papyan)",
    "MSE decomposition (Han et al.)",
    "SNR (Han et al.)",
)
#: Which way is better (more collapsed, or a better model): ``higher``, ``lower``, ``target``
#: (closest to :attr:`Key.target`), ``unranked`` (a property of the data or a count).
DIRECTIONS = ("higher", "lower", "target", "unranked")
#: What a key needs: feature rows or their class statistics, the labels, the classifier's W
#: (``weight``), and the per-sample pass (``decisions``: a statistics run must have recorded
#: the decision counts). No key needs the bias: an absent ``/bias`` counts as b = 0.
NEEDS = ("features", "labels", "weight", "decisions")


@dataclass(frozen=True)
class Key:
    """One output key.

    Attributes
    ----------
    name : str
    quantity : {"metrics", "decompose", "snr"}
        The quantity (and so the commands: it, and ``report``) that computes it.
    family : str
        Its heading in :data:`FAMILIES`.
    definition : str
        What it measures, in a phrase (the formula is in docs/METRICS.md or CENTRAL_PATH.md).
    needs : tuple of str
        From :data:`NEEDS`: what ncanalyze needs to report it (the decomposition is computed
        only for runs with a classifier, so all its keys need ``weight``).
    direction : str
        From :data:`DIRECTIONS`.
    target : str
        With ``direction="target"``: the value it tends to at collapse.
    kind : {"number", "count", "list"}
        ``list``: min(P, C − 1) numbers, flattened as ``KEY_0``, ``KEY_1``, ….
    layer : bool
        Also computed for every ``/layers/<name>`` (``--layers``).
    """

    name: str
    quantity: str
    family: str
    definition: str
    needs: tuple[str, ...]
    direction: str
    target: str = ""
    kind: str = "number"
    layer: bool = False


_F, _FW = ("features", "labels"), ("features", "labels", "weight")
_NC1, _NC2, _NC3, _NC4, _MANY, _DEC, _SNR = FAMILIES

#: Every per-epoch key, in output order within each quantity.
KEYS: tuple[Key, ...] = (
    # metrics (docs/METRICS.md, "Per-epoch metrics")
    Key("nc1", "metrics", _NC1,
        "within-class variability relative to between-class, tr(Σ_W Σ_B^†)/C",
        _F, "lower", layer=True),
    Key("nc1_rank", "metrics", _NC1,
        "numerical rank of the centred class means used by nc1",
        _F, "unranked", kind="count", layer=True),
    Key("cdnv", "metrics", _NC1,
        "class-distance normalised variance, mean over class pairs",
        _F, "lower", layer=True),
    Key("coincident_pairs", "metrics", _NC1,
        "pairs of classes with identical means (cdnv and gnc2 are null when > 0)",
        _F, "unranked", kind="count", layer=True),
    Key("equinorm_means", "metrics", _NC2,
        "spread of the centred class-mean norms (std/mean)",
        _F, "lower", layer=True),
    Key("equinorm_weights", "metrics", _NC2,
        "spread of the classifier row norms (std/mean)",
        _FW, "lower"),
    Key("equiangle_means", "metrics", _NC2,
        "std of the cosines between centred class means",
        _F, "lower"),
    Key("equiangle_weights", "metrics", _NC2,
        "std of the cosines between classifier rows",
        _FW, "lower"),
    Key("maxangle_means", "metrics", _NC2,
        "mean distance of the class-mean cosines from -1/(C-1)",
        _F, "lower"),
    Key("maxangle_weights", "metrics", _NC2,
        "mean distance of the classifier-row cosines from -1/(C-1)",
        _FW, "lower"),
    Key("etf_distance_means", "metrics", _NC2,
        "distance of the class means' Gram matrix to a simplex ETF",
        _F, "lower", layer=True),
    Key("etf_distance_weights", "metrics", _NC2,
        "distance of the classifier's Gram matrix to a simplex ETF",
        _FW, "lower"),
    Key("of_distance_means", "metrics", _NC2,
        "distance of the uncentred means' Gram matrix to an orthogonal frame",
        _F, "lower", layer=True),
    Key("of_distance_weights", "metrics", _NC2,
        "distance of the classifier's Gram matrix to an orthogonal frame",
        _FW, "lower"),
    Key("self_duality", "metrics", _NC3,
        "squared distance between normalised Wᵀ and centred means (NC3)",
        _FW, "lower"),
    Key("nc3_etf", "metrics", _NC3, "distance of W·M̄ to a simplex ETF", _FW, "lower"),
    Key("nc3_of", "metrics", _NC3, "distance of W·M to an orthogonal frame", _FW, "lower"),
    Key("bias_collapse", "metrics", _NC3,
        "‖Wμ_G + b‖, the classifier's output at the global mean",
        _FW, "target", target="0 (CE); 1/√C for MSE with a free bias"),
    Key("accuracy", "metrics", _NC4,
        "classifier accuracy, argmax of Wh + b",
        _FW + ("decisions",), "higher"),
    Key("ncc_accuracy", "metrics", _NC4,
        "nearest-class-centre accuracy",
        _F + ("decisions",), "higher"),
    Key("ncc_mismatch", "metrics", _NC4,
        "share of samples where classifier and NCC disagree (NC4)",
        _FW + ("decisions",), "lower"),
    Key("nc1_trace_ratio", "metrics", _MANY, "tr Σ_W / tr Σ_B, without pseudo-inverse", _F, "lower"),
    Key("gnc2", "metrics", _MANY,
        "variance of the log inverse distances between normalised class means",
        _F, "lower"),
    Key("gnc2_energy", "metrics", _MANY,
        "logarithmic energy of the normalised class means",
        _F, "lower"),
    Key("gnc2_weights", "metrics", _MANY, "gnc2 of the normalised classifier rows", _FW, "lower"),
    Key("gnc2_energy_weights", "metrics", _MANY,
        "gnc2_energy of the normalised classifier rows",
        _FW, "lower"),
    Key("unc3", "metrics", _MANY,
        "std over classes of cos(w_c, μ_c − μ_G) (uniform duality)",
        _FW, "lower"),
    Key("duality_mean", "metrics", _MANY,
        "mean over classes of cos(w_c, μ_c − μ_G)",
        _FW, "target", target="1"),
    Key("classes_present", "metrics", _MANY,
        "classes with samples (K)",
        ("labels",), "unranked", kind="count"),
    Key("class_count_min", "metrics", _MANY,
        "fewest samples of a present class",
        ("labels",), "unranked", kind="count"),
    Key("class_count_max", "metrics", _MANY,
        "most samples of a class",
        ("labels",), "unranked", kind="count"),
    Key("effective_classes", "metrics", _MANY,
        "exp of the class-proportion entropy (C when balanced)",
        ("labels",), "unranked"),
    # decompose (docs/CENTRAL_PATH.md §1)
    Key("loss", "decompose", _DEC,
        "MSE loss of the file's classifier against one-hot targets",
        _FW, "lower"),
    Key("loss_ls", "decompose", _DEC,
        "MSE loss of the least-squares classifier (loss_nc1 + loss_nc23)",
        _FW, "lower"),
    Key("loss_nc1", "decompose", _DEC,
        "the part of loss_ls due to within-class variability",
        _FW, "lower"),
    Key("loss_nc23", "decompose", _DEC,
        "the part of loss_ls due to the class means' geometry",
        _FW, "lower"),
    Key("loss_ls_perp", "decompose", _DEC,
        "excess loss of the file's classifier over least squares",
        _FW, "lower"),
    Key("central_path_ratio", "decompose", _DEC,
        "loss_ls_perp / loss: distance from the central path",
        _FW, "lower"),
    # snr (docs/CENTRAL_PATH.md §2)
    Key("snr_singular_values", "snr", _SNR,
        "singular values ω_0 ≥ ω_1 ≥ … of Σ_W^{-1/2} M̄, min(P, C − 1) of them",
        _F, "higher", kind="list"),
    Key("snr_min", "snr", _SNR, "ω_{C−2}, the smallest non-zero SNR singular value", _F, "higher"),
    Key("snr_max", "snr", _SNR, "ω_0, the largest SNR singular value", _F, "higher"),
    Key("snr_ratio", "snr", _SNR,
        "ω_0 / ω_{C−2}; 1 when the whitened means form a simplex ETF",
        _F, "target", target="1"),
    Key("nc1_whitened", "snr", _SNR, "Σ_j ω_j^{-2}, an affine-invariant NC1", _F, "lower"),
    Key("loss_ls_predicted", "snr", _SNR,
        "least-squares loss predicted from the ω_j (balanced classes)",
        _F, "unranked"),
    Key("snr_dropped_dims", "snr", _SNR,
        "directions without within- or between-class spread left out",
        _F, "unranked", kind="count"),
)

BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}


def keys_of(quantity: str) -> tuple[str, ...]:
    """Output order of the keys of ``quantity``."""
    return tuple(k.name for k in KEYS if k.quantity == quantity)


#: Output order of the ``metrics`` keys.
METRIC_KEYS = keys_of("metrics")
#: The metrics computed from the features and labels alone (a run without ``/weight``).
FEATURE_KEYS = tuple(k.name for k in KEYS if k.quantity == "metrics" and "weight" not in k.needs)
#: Keys computed for every ``/layers/<name>`` (depth-wise collapse).
LAYER_KEYS = tuple(k.name for k in KEYS if k.layer)
DECOMPOSE_KEYS = keys_of("decompose")
SNR_KEYS = keys_of("snr")
#: Keys whose value is a list of numbers (``KEY_0``, ``KEY_1``, … when flattened).
LIST_KEYS = tuple(k.name for k in KEYS if k.kind == "list")


def as_dict(key: Key) -> dict:
    """One row as plain data (``ncanalyze keys -f json``)."""
    return {"name": key.name, "family": key.family, "quantity": key.quantity,
            "direction": key.direction, "target": key.target or None, "needs": list(key.needs),
            "kind": key.kind, "layers": key.layer, "definition": key.definition}


_INDEXED = re.compile(r"^(.+)_(\d+)$")


def row_of(flat_key: str) -> Key | None:
    """The catalogue row of a flattened output key: ``nc1``, ``splits.test.accuracy``,
    ``layers.fc.nc1``, ``snr_singular_values_3``; None for ``epoch``, ``scalars.*`` and
    names not in the catalogue."""
    head, _, rest = flat_key.partition(".")
    if rest:
        if head not in ("splits", "layers") or "." not in rest:
            return None
        leaf = rest.rsplit(".", 1)[1]
    else:
        leaf = flat_key
    if leaf in BY_NAME:
        return BY_NAME[leaf]
    m = _INDEXED.match(leaf)
    if m and m.group(1) in LIST_KEYS:
        return BY_NAME[m.group(1)]
    return None


def target_value(key: Key, *, loss: str | None, classes: int) -> float | None:
    """The value a ``direction="target"`` key tends to at collapse on a run trained with
    ``loss`` and C = ``classes`` (``bias_collapse``: 1/√C for MSE with a free bias, see
    docs/METRICS.md, else 0); None for other directions."""
    if key.direction != "target":
        return None
    if key.name == "bias_collapse":
        return 1.0 / math.sqrt(classes) if (loss or "").lower() == "mse" and classes > 0 else 0.0
    return float(key.target)
