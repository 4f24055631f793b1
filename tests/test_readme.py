"""The README's first lines and its Python quickstart, executed from the README itself."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _quickstart() -> str:
    text = README.read_text()
    section = text[text.index("## Python quickstart"):]
    m = re.search(r"```python\n(.*?)```", section, re.S)
    assert m, "README: no python block under '## Python quickstart'"
    return m.group(1)


def test_first_lines_are_the_two_commands():
    lines = README.read_text().splitlines()
    assert lines[3].startswith("./install.sh && .venv/bin/metaspin run pmnist --quick")
    assert lines[4].startswith("./install.sh && .venv/bin/python -m pytest -q")


def test_quickstart_runs(tmp_path, monkeypatch, capsys):
    code = _quickstart()
    assert len(code.strip().splitlines()) <= 30
    monkeypatch.chdir(tmp_path)                   # runs/quickstart is created here, not in the checkout
    exec(compile(code, str(README) + ":quickstart", "exec"), {"__name__": "__quickstart__"})
    out = capsys.readouterr().out
    rows = re.findall(r"after task (\d): +([\d.]+) +([\d.]+)", out)
    assert [r[0] for r in rows] == ["0", "1"]
    assert float(rows[0][1]) > 50 and float(rows[1][2]) > 50     # each task learned (chance: 10 %)
    assert "spike agreement per layer: [1.0, 1.0, 1.0]" in out
    assert (tmp_path / "runs" / "quickstart" / "checkpoint.pt").is_file()
    assert (tmp_path / "runs" / "quickstart" / "model.pt").is_file()
