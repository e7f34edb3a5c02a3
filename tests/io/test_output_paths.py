"""Output-path rules (docs/RELIABILITY.md §5): never write onto an input, write through to
character devices and FIFOs, follow symlinks, refuse directories, and name the path the user
gave in every output error."""

from __future__ import annotations

import errno
import os
import stat
import threading

import numpy as np
import pytest

from ncanalyze.atomic import atomic_path, atomic_text, check_outputs, check_overwrite
from ncanalyze.errors import OutputError, UsageError

from tests.conftest import run_cli

from tests.factories import valid_members, write_h5


def cli(*args):
    return run_cli(*args)


def _digest(path):
    return open(path, "rb").read()


@pytest.fixture
def run(tmp_path):
    return write_h5(tmp_path / "run.h5", valid_members())


def char_device(tmp_path, name: str, minor: int) -> str:
    """A character device to write to: the system's /dev/NAME when this user cannot replace it,
    else (root) a private node with the same numbers, so that a regression replaces only that."""
    if not os.access("/dev", os.W_OK):
        return f"/dev/{name}"
    node = tmp_path / name
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    return str(node)


def _one_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


# --------------------------------------------------------------------- 7: output onto an input
@pytest.mark.parametrize("how", ["same name", "symlink", "hard link", "relative ./"])
def test_output_onto_the_input_is_refused(tmp_path, run, how, monkeypatch):
    before = _digest(run)
    target = {"same name": run, "symlink": tmp_path / "link.json",
              "hard link": tmp_path / "hard.json", "relative ./": "./run.h5"}[how]
    if how == "symlink":
        os.symlink(run, target)
    if how == "hard link":
        os.link(run, target)
    monkeypatch.chdir(tmp_path)
    result = cli("metrics", run, "-f", "json", "-o", target)
    assert result.exit_code == 2, result.stderr
    line = _one_line(result)
    assert "same file as the input" in line and os.path.normpath(target) in line
    assert _digest(run) == before


@pytest.mark.parametrize("command", ["decompose", "snr"])
def test_plot_onto_the_input_is_refused(tmp_path, run, command):
    before = _digest(run)
    link = tmp_path / "fig.png"
    os.symlink(run, link)
    result = cli(command, run, "-f", "json", "--plot", link)
    assert result.exit_code == 2 and "same file as the input" in _one_line(result)
    assert _digest(run) == before and os.path.islink(link)


def test_output_and_plot_on_one_file_is_refused(tmp_path, run):
    result = cli("snr", run, "-f", "json", "-o", tmp_path / "x.png", "--plot", tmp_path / "x.png")
    assert result.exit_code == 2 and "same file" in _one_line(result)
    assert not (tmp_path / "x.png").exists()


def test_plot_command_onto_an_input_or_compared_run_is_refused(tmp_path, run):
    other = write_h5(tmp_path / "other.h5", valid_members(1))
    before = _digest(other)
    link = tmp_path / "panel.png"
    os.symlink(other, link)
    result = cli("plot", run, "--compare", other, "-o", link)
    assert result.exit_code == 2 and "same file as the input" in _one_line(result)
    assert _digest(other) == before


def test_convert_onto_one_of_its_dumps_is_refused(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    y = np.arange(30) % 3
    for e in (1, 2):
        np.savez(folder / f"epoch_{e}.npz", features=np.ones((30, 4), np.float32) * e + y[:, None],
                 labels=y)
    dump = folder / "epoch_2.npz"
    before = _digest(dump)
    result = cli("convert", folder, dump, "--overwrite")
    assert result.exit_code == 2 and "same file as the input" in _one_line(result)
    assert _digest(dump) == before


def test_check_outputs_api(tmp_path):
    a = tmp_path / "a.h5"
    a.write_bytes(b"x")
    check_outputs({"-o": tmp_path / "b.json"}, [a])  # a new file is fine
    check_outputs({"-o": None}, [a])
    with pytest.raises(UsageError, match="same file as the input"):
        check_outputs({"-o": str(a)}, [a])
    with pytest.raises(UsageError, match="same file"):
        check_outputs({"-o": tmp_path / "c", "--plot": tmp_path / "sub" / ".." / "c"}, [a])


# --------------------------------------------------------------- 8: devices, FIFOs, links, dirs
def test_output_to_dev_null_writes_through(tmp_path, run):
    null = char_device(tmp_path, "null", 3)
    result = cli("metrics", run, "-f", "json", "-o", null)
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) in (["null", "run.h5"], ["run.h5"])


def test_output_to_a_fifo_writes_through(tmp_path, run):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo).read()), daemon=True)
    reader.start()
    result = cli("metrics", run, "-f", "csv", "-o", fifo)
    reader.join(30)
    assert result.exit_code == 0, result.stderr
    assert received and received[0].startswith("epoch,") and len(received[0].splitlines()) == 4
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "run.h5"]


def test_output_through_a_symlink_writes_its_target(tmp_path, run):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "m.csv"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "link.csv"
    os.symlink(target, link)
    result = cli("metrics", run, "-f", "csv", "-o", link)
    assert result.exit_code == 0, result.stderr
    assert os.path.islink(link) and os.readlink(link) == str(target)
    assert target.read_text().startswith("epoch,")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in real_dir.iterdir()) == ["m.csv"]
    dangling = tmp_path / "dangling.csv"
    os.symlink(real_dir / "new.csv", dangling)
    assert cli("metrics", run, "-f", "csv", "-o", dangling).exit_code == 0
    assert os.path.islink(dangling) and (real_dir / "new.csv").read_text().startswith("epoch,")


def test_output_onto_a_directory_is_refused(tmp_path, run):
    folder = tmp_path / "outdir"
    folder.mkdir()
    for args in (("metrics", run, "-f", "json", "-o", folder),
                 ("snr", run, "--plot", tmp_path / "outdir.png"),
                 ("simulate", folder, "--steps", "5", "--overwrite")):
        if args[0] == "snr":
            (tmp_path / "outdir.png").mkdir()
        result = cli(*args)
        assert result.exit_code == 2, (args, result.stderr)
        assert "is a directory" in _one_line(result)
    assert list(folder.iterdir()) == []


def test_run_file_outputs_refuse_devices(tmp_path):
    null = char_device(tmp_path, "null", 3)
    result = cli("simulate", null, "--steps", "5", "--overwrite")
    assert result.exit_code == 2 and "not a regular file" in _one_line(result), result.stderr
    assert stat.S_ISCHR(os.lstat(null).st_mode)


# ------------------------------------------------------------ 9: errors name the user's path
def test_missing_folder_names_the_given_path(tmp_path, run):
    target = tmp_path / "no" / "such" / "m.csv"
    result = cli("metrics", run, "-f", "csv", "-o", target)
    assert result.exit_code == 3
    line = _one_line(result)
    assert str(target) in line and ".tmp" not in line, line


def test_full_device_names_the_given_path(tmp_path, run):
    full = char_device(tmp_path, "full", 7)
    result = cli("metrics", run, "-f", "json", "-o", full)
    assert result.exit_code == 3
    line = _one_line(result)
    assert full in line and "No space left" in line, line
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_full_disk_during_a_regular_write_names_the_given_path(tmp_path, monkeypatch):
    target = tmp_path / "m.txt"
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError) as info:
        with atomic_text(target) as fh:
            fh.write("x")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert str(target) in str(info.value) and ".tmp" not in str(info.value)
    assert "No space left" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_body_errors_on_the_temporary_name_the_given_path(tmp_path):
    target = tmp_path / "fig.png"
    with pytest.raises(OutputError) as info:
        with atomic_path(target) as tmp:
            raise PermissionError(errno.EACCES, "Permission denied", tmp)
    assert str(target) in str(info.value) and ".tmp" not in str(info.value)
    with pytest.raises(OutputError, match="No space left"):
        with atomic_path(target):
            raise OSError(errno.ENOSPC, "No space left on device")


# ------------------------------------------------------- issue 9: "exists and not overwrite"
def test_exists_without_overwrite_one_rule(tmp_path):
    from ncanalyze.convert import convert
    from ncanalyze.io.writer import RunWriter
    from ncanalyze.simulate import UFMConfig, simulate

    existing = tmp_path / "x.h5"
    existing.write_bytes(b"keep")
    with pytest.raises(UsageError, match="exists; pass --overwrite"):
        check_overwrite(existing, False)
    check_overwrite(existing, True)
    check_overwrite(tmp_path / "new.h5", False)
    messages = []
    for call in (lambda: RunWriter(existing, np.arange(6) % 2),
                 lambda: simulate(existing, UFMConfig(epochs=5)),
                 lambda: convert(tmp_path, existing)):
        with pytest.raises(UsageError) as info:
            call()
        messages.append(info.value.reason)
    assert len(set(messages)) == 1 and "exists; pass --overwrite" in messages[0], messages
    assert existing.read_bytes() == b"keep"


def test_run_writer_errors_name_the_given_path(tmp_path, monkeypatch):
    import h5py

    from ncanalyze.io.writer import RunWriter
    from ncanalyze.simulate import UFMConfig, simulate

    missing = tmp_path / "no" / "r.h5"
    for call in (lambda: RunWriter(missing, np.arange(6) % 2),
                 lambda: simulate(missing, UFMConfig(epochs=5))):
        with pytest.raises(OutputError) as info:
            call()
        assert str(missing) in str(info.value) and ".partial" not in str(info.value)
        assert ".tmp" not in str(info.value)
    path = tmp_path / "r.h5"
    w = RunWriter(path, np.arange(6) % 2)
    w.add_epoch(1, np.ones((6, 3)))

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(h5py.File, "flush", full)
    with pytest.raises(OutputError) as info:
        w.add_epoch(2, np.ones((6, 3)))
    assert str(path) in str(info.value) and "No space left" in str(info.value)
    monkeypatch.undo()
    w.close()


def test_simulate_full_disk_names_the_given_path(tmp_path, monkeypatch):
    import h5py

    from ncanalyze.simulate import UFMConfig, simulate

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(h5py.File, "flush", full)
    out = tmp_path / "u.h5"
    with pytest.raises(OutputError) as info:
        simulate(out, UFMConfig(epochs=5))
    assert str(out) in str(info.value) and ".tmp" not in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_figure_to_a_fifo_is_written_through(tmp_path, run):
    fifo = tmp_path / "fig.png"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()),
                              daemon=True)
    reader.start()
    result = cli("snr", run, "-f", "json", "--plot", fifo)
    reader.join(30)
    assert result.exit_code == 0, result.stderr
    assert received and received[0].startswith(b"\x89PNG"), received
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
