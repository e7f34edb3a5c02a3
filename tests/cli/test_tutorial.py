"""docs/TUTORIAL.md runs as written: every shell command of its fenced blocks (the GitHub
Actions step's ``run:`` lines included), in order, in an empty folder (issue 20 item 1).

``-m slow`` runs each command in a shell exactly as written (about a minute per training on a
quiet core). The default suite runs the same commands, in order, in the same kind of folder,
with ``--epochs 5`` added to the training commands (the tutorial's quick try is
``--epochs 20``) and without the process start-ups: ``ncanalyze …`` through the CLI in this
process, ``python examples/train_digits.py …`` through the script's ``main`` (PyTorch's global
settings restored afterwards); the background training, which ``--follow`` reads while it
writes, and the ``ncanalyze`` commands that follow it stay separate processes (HDF5 does not
let one process hold a file open for writing and reading). ``ncanalyze`` and ``python`` are
this interpreter with this checkout on ``PYTHONPATH``; ``examples/`` is linked into the
folder, since the tutorial runs from the repository's root.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "TUTORIAL.md"


def tutorial_commands() -> list[str]:
    """The shell commands of the tutorial's fenced blocks, in order (continuations joined)."""
    text = TUTORIAL.read_text(encoding="utf-8")
    commands: list[str] = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        if lang == "python":
            continue  # an excerpt of a training loop, not a command
        lines = body.splitlines()
        if lang == "yaml":  # the lines of each `run: |` block
            picked, indent = [], None
            for line in lines:
                if indent is not None and (line.startswith(" " * indent) or not line.strip()):
                    picked.append(line.strip())
                    continue
                indent = None
                if line.strip().startswith("run: |"):
                    indent = len(line) - len(line.lstrip()) + 1
            lines = picked
        joined = "\n".join(x.strip() for x in lines).replace("\\\n", " ")
        commands += [c for c in joined.splitlines() if c.strip()]
    return commands


def _quick(command: str, epochs: int | None) -> str:
    """``command`` with ``--epochs N`` appended to a training command (before a trailing &)."""
    if epochs is None or "train_digits.py" not in command:
        return command
    m = re.match(r"^(.*?)(\s*&\s*(#.*)?)?$", command)
    return f"{m.group(1)} --epochs {epochs}{m.group(2) or ''}"


def _run_tutorial(tmp_path: Path, epochs: int | None) -> list[tuple[str, int]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, cmd in (("ncanalyze", f'"{sys.executable}" -m ncanalyze'),
                      ("python", f'"{sys.executable}"')):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {cmd} "$@"\n')
        script.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"), COLUMNS="80")
    done, background = [], []
    for command in tutorial_commands():
        command = _quick(command, epochs)
        if re.search(r"&\s*(#.*)?$", command):
            background.append((command, subprocess.Popen(
                ["bash", "-c", command.split("&")[0]], cwd=work, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
            continue
        r = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True,
                           text=True, timeout=1800)
        # A --fail-if may hold (exit 1, said on stderr); anything else must succeed.
        allowed = (0, 1) if "--fail-if" in command else (0,)
        assert r.returncode in allowed, f"{command}\nexit {r.returncode}\n{r.stderr[-3000:]}"
        if r.returncode == 1:
            assert "gate FAILED" in r.stderr, r.stderr
        done.append((command, r.returncode))
    for command, proc in background:
        _, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0, f"{command}\n{err[-3000:]}"
    return done


@contextlib.contextmanager
def _torch_state_kept():
    """The script sets PyTorch's threads, determinism and seed: give them back afterwards."""
    import torch

    threads, det, rng = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                         torch.random.get_rng_state())
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
        torch.random.set_rng_state(rng)


def _run_in_process(tmp_path: Path, monkeypatch) -> list[str]:
    """The tutorial's commands in order, the quick way (see the module docstring)."""
    from tests.conftest import run_cli

    spec = importlib.util.spec_from_file_location("train_digits",
                                                  ROOT / "examples" / "train_digits.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(work)
    summary = tmp_path / "summary.md"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    background: list[subprocess.Popen] = []
    done = []
    for command in tutorial_commands():
        command = _quick(command, 5).replace('"$GITHUB_STEP_SUMMARY"', str(summary))
        words = shlex.split(command, comments=True)
        if words[-1] == "&":  # training in the background, a process of its own
            background.append(subprocess.Popen(
                [sys.executable, *words[1:-1]], cwd=work, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
            continue
        if words[0] == "python":
            with _torch_state_kept(), contextlib.redirect_stdout(io.StringIO()):
                assert train.main(words[2:]) == 0, command
        elif background and "--follow" in words:  # reads the file the background job writes
            r = subprocess.run([sys.executable, "-m", *words], cwd=work, env=env,
                               capture_output=True, text=True, timeout=600)
            code, err = r.returncode, r.stderr
        else:
            out = None
            if ">>" in words:
                words, out = words[:words.index(">>")], Path(words[words.index(">>") + 1])
            r = run_cli(*words[1:], env={"COLUMNS": "80"})
            code, err = r.exit_code, r.stderr
            if out is not None:
                with open(out, "a", encoding="utf-8") as fh:
                    fh.write(r.stdout)
        if words[0] != "python":
            allowed = (0, 1) if "--fail-if" in command else (0,)
            assert code in allowed, f"{command}\nexit {code}\n{err[-3000:]}"
            assert code == 0 or "gate FAILED" in err, err
        done.append(command)
    for proc in background:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    return done


def test_the_tutorial_has_the_commands_it_promises():
    commands = tutorial_commands()
    assert commands[0].startswith("python examples/train_digits.py --loss mse")
    assert any(c.startswith("ncanalyze plot") for c in commands)
    assert any("--follow" in c for c in commands)
    assert any("GITHUB_STEP_SUMMARY" in c for c in commands)
    assert _quick("python examples/train_digits.py --out live.h5 --no-report &     # bg", 5) \
        == "python examples/train_digits.py --out live.h5 --no-report --epochs 5 &     # bg"


def test_every_tutorial_command_runs_in_order(tmp_path, monkeypatch):
    done = _run_in_process(tmp_path, monkeypatch)
    assert len(done) == len(tutorial_commands()) - 1  # one runs in the background
    assert (tmp_path / "work" / "nc.png").stat().st_size > 0
    assert (tmp_path / "summary.md").read_text().startswith("### ncanalyze report")


@pytest.mark.slow
def test_every_tutorial_command_runs_as_written_in_a_shell(tmp_path):
    done = _run_tutorial(tmp_path, epochs=None)
    assert len(done) == len(tutorial_commands()) - 1
    assert (tmp_path / "summary.md").read_text().startswith("### ncanalyze report")
