"""Untrusted files (docs/RELIABILITY.md): external data is refused unless --allow-external, nothing is
evaluated or unpickled, and no command changes the input file's bytes."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys

import h5py
import numpy as np
import pytest

from ncanalyze import InputError, open_run
from ncanalyze.cli import app
from tests.conftest import run_cli

from tests.factories import N, P, E, valid_members, write_h5


def cli(*args):
    return run_cli(*args)


def metrics_json(*args):
    result = cli("metrics", *args, "-f", "json", "--quiet")
    assert result.exit_code == 0, result.stderr
    return [{k: v for k, v in e.items()} for e in json.loads(result.stdout)["epochs"]]


@pytest.fixture
def reference(tmp_path):
    """The plain (self-contained) run and its metrics."""
    path = write_h5(tmp_path / "plain.h5", valid_members())
    return path, metrics_json(path)


def _external_link_file(tmp_path):
    m = valid_members()
    write_h5(tmp_path / "data.h5", {"features": m.pop("features")}, attrs={})
    path = write_h5(tmp_path / "main.h5", m)
    with h5py.File(path, "a") as f:
        f["features"] = h5py.ExternalLink("data.h5", "/features")
    return path, "/features", "external link to data.h5:/features"


def _external_group_file(tmp_path):
    # The link is an intermediate component: /scalars -> other file's group.
    m = valid_members()
    scalars = m.pop("scalars/train_loss")
    write_h5(tmp_path / "other.h5", {"s/train_loss": scalars}, attrs={})
    path = write_h5(tmp_path / "main.h5", m)
    with h5py.File(path, "a") as f:
        f["scalars"] = h5py.ExternalLink("other.h5", "/s")
    return path, "/scalars", "is an external link to other.h5:/s"


def _soft_to_external_file(tmp_path):
    m = valid_members()
    write_h5(tmp_path / "data.h5", {"features": m.pop("features")}, attrs={})
    path = write_h5(tmp_path / "main.h5", m)
    with h5py.File(path, "a") as f:
        f["ext"] = h5py.ExternalLink("data.h5", "/features")
        f["features"] = h5py.SoftLink("/ext")
    return path, "/features", "/ext is an external link to data.h5:/features"


def _external_storage_file(tmp_path):
    m = valid_members()
    feats = np.ascontiguousarray(m.pop("features"))
    raw = tmp_path / "features.raw"
    raw.write_bytes(feats.tobytes())
    path = write_h5(tmp_path / "main.h5", m)
    with h5py.File(path, "a") as f:
        f.create_dataset("features", shape=feats.shape, dtype=feats.dtype,
                         external=[("features.raw", 0, feats.nbytes)])
    return path, "/features", "uses external raw storage"


def _virtual_file(tmp_path):
    m = valid_members()
    feats = m.pop("features")
    write_h5(tmp_path / "data.h5", {"features": feats}, attrs={})
    path = write_h5(tmp_path / "main.h5", m)
    layout = h5py.VirtualLayout(shape=feats.shape, dtype=feats.dtype)
    layout[...] = h5py.VirtualSource("data.h5", "features", shape=feats.shape)
    with h5py.File(path, "a") as f:
        f.create_virtual_dataset("features", layout)
    return path, "/features", "virtual dataset mapping file 'data.h5'"


EXTERNAL = [_external_link_file, _external_group_file, _soft_to_external_file,
            _external_storage_file, _virtual_file]


@pytest.mark.parametrize("build", EXTERNAL, ids=lambda f: f.__name__.strip("_"))
def test_external_data_refused_unless_allowed(tmp_path, reference, build, monkeypatch):
    _, expected = reference
    path, dataset, text = build(tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    # Relative external names resolve against the file's folder; run from elsewhere.
    monkeypatch.chdir(tmp_path.parent)
    result = cli("metrics", path)
    assert result.exit_code == 3
    line = result.stderr.strip()
    assert line.count("\n") == 0 and "Traceback" not in line
    assert line.startswith(f"ncanalyze: error: {path}: {dataset}: "), line
    assert text in line and "refused (pass --allow-external" in line, line
    with pytest.raises(InputError, match="refused"):
        open_run(path)
    inspected = cli("inspect", path, "-f", "json")
    assert inspected.exit_code == 3
    assert any("refused" in p for p in json.loads(inspected.stdout)["problems"])
    # With the flag the data is followed and gives the self-contained file's results.
    got = metrics_json(path, "--allow-external")
    for e_got, e_ref in zip(got, expected, strict=True):
        assert e_got == e_ref
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_virtual_dataset_inside_the_file_is_accepted(tmp_path, reference):
    _, expected = reference
    m = valid_members()
    feats = m.pop("features")
    m["raw"] = feats
    path = write_h5(tmp_path / "vds.h5", m)
    layout = h5py.VirtualLayout(shape=feats.shape, dtype=feats.dtype)
    layout[...] = h5py.VirtualSource(".", "raw", shape=feats.shape)
    with h5py.File(path, "a") as f:
        f.create_virtual_dataset("features", layout)
    assert metrics_json(path) == expected


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_nothing_is_evaluated_or_unpickled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    m = valid_members()
    path = write_h5(tmp_path / "evil.h5", m, attrs={
        "ncanalyze_format": 1,
        "loss": "__import__('os').system('touch PWNED_BY_EVAL')",
        "payload": np.void(pickle.dumps(_Boom())),
    })
    with h5py.File(path, "a") as f:
        f.create_dataset("scalars/pickled", data=np.frombuffer(pickle.dumps(_Boom()), "u1"))
        f.create_dataset("scalars/opaque", data=np.array([np.void(pickle.dumps(_Boom()))] * E))
        f["labels"].attrs["note"] = "${HOME}`touch PWNED_BY_SHELL`"
    for args in (["inspect", path], ["inspect", path, "-f", "json"],
                 ["metrics", path, "-f", "json"]):
        result = cli(*args)
        assert result.exit_code in (0, 3), result.stderr
        assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("PWNED*"))


def _commands(path, tmp_path):
    """Every command that reads a run file, with outputs going elsewhere."""
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    cmds = [["inspect", path], ["inspect", path, "-f", "json"],
            ["metrics", path, "-f", "json", "--layers", "--split", "test"],
            ["metrics", path, "-f", "csv", "-o", out / "m.csv"]]
    if "decompose" in names:
        cmds.append(["decompose", path, "-f", "json", "--plot", out / "d.png"])
    if "snr" in names:
        cmds.append(["snr", path, "-f", "json", "--plot", out / "s.png"])
    if "report" in names:
        cmds.append(["report", path, "-f", "markdown", "-o", out / "r.md"])
    if "plot" in names:
        cmds.append(["plot", path, "-o", out / "panel.png"])
    return cmds


def test_no_command_changes_the_input_file(tmp_path):
    m = valid_members()
    m["layers/block"] = m["features"][:, :, :4].copy()
    m["splits/test/labels"] = m["labels"][: N // 2].copy()
    m["splits/test/features"] = m["features"][:, : N // 2].copy()
    path = write_h5(tmp_path / "run.h5", m, attrs={"ncanalyze_format": 1, "weight_decay": 1e-3})
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    mtime = os.stat(path).st_mtime_ns
    ran = []
    for args in _commands(path, tmp_path):
        result = cli(*args)
        assert result.exit_code in (0, 3), (args, result.stderr)  # 3: inspect's P ≥ N−C etc.
        assert "internal error" not in result.stderr, (args, result.stderr)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, args
        ran.append(args[0])
    assert os.stat(path).st_mtime_ns == mtime
    assert {"inspect", "metrics"} <= set(ran)


def test_file_written_by_run_writer_is_unchanged_by_reading(tmp_path):
    from ncanalyze import RunWriter

    path = tmp_path / "w.h5"
    rng = np.random.default_rng(1)
    y = np.arange(N) % 3
    with RunWriter(path, y, loss="mse") as w:
        for e in range(3):
            w.add_epoch(e, rng.standard_normal((N, P)), rng.standard_normal((3, P)))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for args in _commands(path, tmp_path)[:4] + [["snr", path, "-f", "json"]]:
        result = cli(*[a for a in args if a not in ("--layers", "--split", "test")])
        assert "internal error" not in result.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
