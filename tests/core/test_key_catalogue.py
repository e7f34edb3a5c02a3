"""The key catalogue (ncanalyze/core/keys.py) is the one list of output keys: every key a
command emits has a row, every row is emitted and has a reference value (or says why not),
the docs list the same keys, and what is derived from it (tuples, gates, view, markdown,
``ncanalyze keys``) agrees with it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ncanalyze.analysis import Analysis
from ncanalyze.core import keys as catalogue
from ncanalyze.core.keys import (BY_NAME, DIRECTIONS, FAMILIES, KEYS, LIST_KEYS, NEEDS,
                                 row_of, target_value)
from ncanalyze.io.writer import RunWriter
from ncanalyze.results import flatten
from ncanalyze.settings import Settings
from tests.conftest import run_cli
from tests.factories import collapsing_features, labels
from tests.reference import reference_decompose, reference_metrics, reference_snr

ROOT = Path(__file__).resolve().parents[2]
#: Output keys that are not measurements, so have no row.
STRUCTURAL = {"epoch": "the epoch number", "scalars.*": "the training loop's own values"}
#: Rows without a value in tests/reference.py, and why.
NO_REFERENCE = {
    "snr_dropped_dims": "0 whenever Σ_W is invertible (the oracle's precondition); the dropped "
                        "directions are tested against constructed singular Σ_W in "
                        "tests/core/test_snr.py",
}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A run with everything a key can need: W, b, a layer, a split, a scalar."""
    rng = np.random.default_rng(5)
    C, P = 4, 6
    y, yt = labels(C, 25, rng), labels(C, 10, rng)
    means = 3 * rng.normal(size=(C, P))
    path = tmp_path_factory.mktemp("keys") / "full.h5"
    with RunWriter(path, y, splits={"test": yt}, weight_decay=1e-3, loss="mse") as w:
        for e in (1, 2):
            w.add_epoch(e, collapsing_features(y, means, 1.0 / e, rng),
                        means + 0.1 * rng.normal(size=(C, P)), 0.1 * rng.normal(size=C),
                        layers={"block": rng.normal(size=(y.size, 3))},
                        splits={"test": collapsing_features(yt, means, 1.0 / e, rng)},
                        train_loss=1.0 / e)
    return path, y, C


def _emitted(path) -> list[str]:
    with Analysis(path, Settings(("metrics", "decompose", "snr"), backend="numpy",
                                 layers=True)) as a:
        return [k for r in a for k in flatten(r.values)]


def test_every_emitted_key_has_a_row_and_every_row_is_emitted(full_run):
    path, _, C = full_run
    emitted = set(_emitted(path))
    rowless = {k for k in emitted if row_of(k) is None and k != "epoch"
               and not k.startswith("scalars.")}
    assert not rowless, f"keys without a catalogue row: {sorted(rowless)}"
    top = {k for k in emitted if "." not in k}
    for key in KEYS:
        names = [f"{key.name}_{j}" for j in range(C - 1)] if key.kind == "list" else [key.name]
        assert set(names) <= top, f"{key.name}: in the catalogue, never emitted"
        if key.layer:
            assert f"layers.block.{key.name}" in emitted
    assert {k.split(".")[-1] for k in emitted if k.startswith("layers.")} == set(
        catalogue.LAYER_KEYS)
    assert {k.split(".", 2)[2] for k in emitted if k.startswith("splits.test.")} == set(
        catalogue.METRIC_KEYS)


def test_every_row_has_a_reference_value_or_says_why_not(full_run):
    rng = np.random.default_rng(0)
    C, P = 4, 6
    y = labels(C, 20, rng)
    h = collapsing_features(y, 3 * rng.normal(size=(C, P)), 0.5, rng)
    w, b = rng.normal(size=(C, P)), rng.normal(size=C)
    reference = {**reference_metrics(h, y, w, b, C), **reference_decompose(h, y, w, b, 1e-3, C)[0],
                 **reference_snr(h, y, C)}
    for key in KEYS:
        if key.name in NO_REFERENCE:
            assert key.name not in reference, f"{key.name}: stale NO_REFERENCE entry"
        else:
            assert key.name in reference, f"{key.name}: no value in tests/reference.py"
    assert set(NO_REFERENCE) <= set(BY_NAME)


def test_rows_are_well_formed_and_the_tuples_derive_from_them():
    assert len(BY_NAME) == len(KEYS)
    for key in KEYS:
        assert key.family in FAMILIES and key.direction in DIRECTIONS, key
        assert set(key.needs) <= set(NEEDS) and {"features", "labels"} & set(key.needs), key
        assert key.quantity in ("metrics", "decompose", "snr") and key.definition, key
        assert (key.direction == "target") == bool(key.target), key
    assert catalogue.FEATURE_KEYS == tuple(k for k in catalogue.METRIC_KEYS
                                           if "weight" not in BY_NAME[k].needs)
    assert LIST_KEYS == ("snr_singular_values",)
    assert row_of("splits.test.accuracy") is BY_NAME["accuracy"]
    assert row_of("snr_singular_values_3") is BY_NAME["snr_singular_values"]
    assert row_of("scalars.train_loss") is None and row_of("nc1_0") is None
    assert target_value(BY_NAME["bias_collapse"], loss="mse", classes=4) == 0.5
    assert target_value(BY_NAME["bias_collapse"], loss="ce", classes=4) == 0.0
    assert target_value(BY_NAME["duality_mean"], loss=None, classes=4) == 1.0


def _table_keys(text: str, row: str) -> list[str]:
    """The keys in the first column of the markdown table holding the line starting ``row``."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(row))
    start = at
    while start > 0 and lines[start - 1].startswith("|"):
        start -= 1
    out = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        out += re.findall(r"`([a-z0-9_]+)`", line.split("|")[1])
    return out


def test_the_docs_list_the_catalogue_keys():
    metrics = (ROOT / "docs/METRICS.md").read_text(encoding="utf-8")
    central = (ROOT / "docs/CENTRAL_PATH.md").read_text(encoding="utf-8")
    assert _table_keys(metrics, "| `nc1` |") == list(catalogue.METRIC_KEYS)
    assert _table_keys(central, "| `loss` |") == list(catalogue.DECOMPOSE_KEYS)
    assert sorted(_table_keys(central, "| `snr_singular_values` |")) == sorted(catalogue.SNR_KEYS)


def test_metrics_doc_catalogue_is_the_keys_command_output():
    """docs/METRICS.md, "Key catalogue", is `ncanalyze keys -f markdown` verbatim."""
    text = (ROOT / "docs/METRICS.md").read_text(encoding="utf-8")
    begin, end = "<!-- keys: begin (ncanalyze keys -f markdown) -->\n", "<!-- keys: end -->"
    assert begin in text and end in text
    section = text[text.index(begin) + len(begin):text.index(end)]
    assert section == run_cli("keys", "-f", "markdown").stdout


def test_keys_command_formats():
    table = run_cli("keys")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert all(any(line.split() and line.split()[0] == k.name for line in lines) for k in KEYS)
    rows = json.loads(run_cli("keys", "-f", "json").stdout)
    assert [r["name"] for r in rows] == [k.name for k in KEYS]
    assert all({"name", "family", "direction", "needs", "definition"} <= set(r) for r in rows)
    assert {r["name"]: r["direction"] for r in rows}["duality_mean"] == "target"
    bad = run_cli("keys", "-f", "csv")
    assert bad.exit_code == 2


EXAMPLE = ROOT / "examples" / "digits_mlp.h5"


def test_markdown_best_and_view_headings_follow_the_catalogue():
    """duality_mean tends to 1 (its "best" was the least collapsed epoch, 0.009 at epoch 0),
    class counts are not ranked, and no catalogue key falls under "other" in the view."""
    md = run_cli("metrics", EXAMPLE, "-f", "markdown").stdout
    cells = {line.split("|")[1].strip(" `"): line.split("|") for line in md.splitlines()
             if line.startswith("| `")}
    assert cells["duality_mean"][4].strip().startswith(cells["duality_mean"][3].strip())
    assert "→ 1" in cells["duality_mean"][4] and "(0" not in cells["duality_mean"][4]
    for key in ("classes_present", "class_count_min", "class_count_max", "effective_classes"):
        assert cells[key][4].strip() == "", key
    view = run_cli("metrics", EXAMPLE, "--all", "--split", "none").stdout.splitlines()
    headings = {line for line in view if line and not line.startswith((" ", "epoch"))}
    assert "other" not in headings and "many classes (Wu & Papyan)" in headings
