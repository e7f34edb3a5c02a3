"""The bundled statistics run examples/tiny_lm.h5 (from examples/train_tiny_lm.py) and the
README's report of it."""

from __future__ import annotations

from pathlib import Path

from ncanalyze.io import open_run
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
TINY_LM = ROOT / "examples" / "tiny_lm.h5"


def test_bundled_language_model_run_is_a_statistics_run():
    with open_run(TINY_LM) as run:
        assert run.kind == "statistics"
        assert run.info.num_classes >= 4096 and run.info.epochs.tolist() == [0, 2, 4]
        assert set(run.info.splits) == {"test"}
    assert TINY_LM.stat().st_size <= 9_000_000


def test_readme_language_model_report_is_the_real_80_column_output():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pasted = readme.split("$ ncanalyze report examples/tiny_lm.h5\n", 1)[1].split("```")[0]
    assert max(len(line) for line in pasted.splitlines()) <= 80
    real = run_cli("report", TINY_LM, env={"COLUMNS": "80"}).stdout
    real = real.replace(f"file: {TINY_LM}", "file: examples/tiny_lm.h5")
    assert pasted.split("\n\nshown:")[0] == real.split("\n\nshown:")[0]
