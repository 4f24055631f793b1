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


def test_install_sh_cuda_option_installs_the_pinned_torch_version():
    """`./install.sh --cuda`: the CUDA build of the *same* torch as pyproject pins, from an index that
    bypasses the pip config (local wheel folders hold the CPU build), checked to be a CUDA build; the
    default install touches no index; unknown options exit 2 (run for real)."""
    import subprocess
    import tomllib
    root = README.parent
    text = (root / "install.sh").read_text()
    pins = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.13.0" in pins
    cuda = text[text.index('if [ "$CUDA" = 1 ]; then'):text.index("fi\n")]
    assert "PIP_CONFIG_FILE=/dev/null" in cuda and "-u PIP_FIND_LINKS" in cuda and '"$TORCH_PIN"' in cuda
    assert "torch.version.cuda" in cuda and "project']['dependencies']" in cuda
    default = text.replace(cuda, "")
    assert "--index-url" not in default and "pip install -q -e '.[test]'" in default
    r = subprocess.run(["bash", str(root / "install.sh"), "--gpu"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown option --gpu" in r.stderr
    assert "./install.sh --cuda" in README.read_text()
