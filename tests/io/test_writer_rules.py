"""The writer refuses what the reader would refuse (one shared set of rules, io/schema.py):
a file RunWriter produces is always readable, and every value it accepts reads back."""

from __future__ import annotations

import numpy as np
import pytest

from ncanalyze import InputError, RunWriter, UsageError, open_run
from tests.factories import write_h5, valid_members

Y = np.arange(30) % 3


@pytest.mark.parametrize("wd", [float("nan"), float("inf"), -1.0, True, "x"])
def test_writer_refuses_a_weight_decay_the_reader_refuses(tmp_path, wd):
    with pytest.raises(UsageError, match="weight_decay"):
        RunWriter(tmp_path / "w.h5", Y, weight_decay=wd)
    assert not (tmp_path / "w.h5").exists()


def test_writer_and_reader_give_the_same_weight_decay_message(tmp_path):
    with pytest.raises(UsageError) as written:
        RunWriter(tmp_path / "w.h5", Y, weight_decay=-1.0)
    path = write_h5(tmp_path / "r.h5", valid_members(),
                    attrs={"ncanalyze_format": 1, "weight_decay": -1.0})
    with pytest.raises(InputError) as read:
        open_run(path)
    assert str(written.value) in str(read.value)


def test_writer_and_reader_accept_classes_without_samples(tmp_path):
    # Vocabulary-sized C: absent classes are valid data (docs/METRICS.md, "Absent classes");
    # --require-all-classes makes them an error at analysis time.
    with RunWriter(tmp_path / "w.h5", Y, num_classes=4) as w:
        w.add_epoch(1, np.ones((Y.size, 2)))
    with open_run(tmp_path / "w.h5") as run:
        assert run.info.num_classes == 4
    RunWriter(tmp_path / "s.h5", Y, splits={"test": np.arange(10) % 2}).close()


@pytest.mark.parametrize("kind", ["layers", "scalars", "splits"])
@pytest.mark.parametrize("name", ["block1/conv", "", "."])
def test_writer_refuses_member_names_the_reader_cannot_find(tmp_path, kind, name):
    x = np.zeros((30, 4), np.float32)
    with pytest.raises(UsageError, match="name"):
        if kind == "splits":
            RunWriter(tmp_path / "w.h5", Y, splits={name: Y})
        else:
            with RunWriter(tmp_path / "w.h5", Y) as w:
                if kind == "layers":
                    w.add_epoch(0, x, layers={name: x})
                else:
                    w.add_epoch(0, x, **{name: 1.0})


def test_writer_output_reads_back_with_every_member(tmp_path):
    x = np.random.default_rng(0).standard_normal((30, 4)).astype(np.float32)
    with RunWriter(tmp_path / "w.h5", Y, weight_decay=0.0, splits={"test": Y[:12]}) as w:
        for e in range(2):
            w.add_epoch(e, x, layers={"block1": x}, splits={"test": x[:12]}, train_loss=1.0)
    with open_run(tmp_path / "w.h5") as run:
        assert run.info.weight_decay == 0.0
        assert list(run.info.layers) == ["block1"] and list(run.info.splits) == ["test"]
        assert run.info.scalars == ["train_loss"]


def test_convert_refuses_a_nan_weight_decay(tmp_path):
    from tests.conftest import run_cli

    folder = tmp_path / "npz"
    folder.mkdir()
    np.savez(folder / "epoch_0001.npz", features=np.zeros((30, 4), np.float32), labels=Y)
    result = run_cli("convert", folder, tmp_path / "out.h5", "--weight-decay", "nan")
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert "--weight-decay" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.h5").exists()
