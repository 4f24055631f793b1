import os
import subprocess
import sys

from metaspin_snn.cli import main
from metaspin_snn.lava_setup import lava_smoke_test, patched_source


def test_lava_dense_lif_runs_and_matches_equations():
    ok, msg = lava_smoke_test(timeout=180)
    assert ok, msg


def test_lava_fix_is_idempotent_and_targeted():
    src = ("from dataclasses import dataclass, InitVar\n"
           + "".join(f"@dataclass\nclass C{i}:\n    x: ByteEncoder = ByteEncoder()\n" for i in range(8)))
    fixed = patched_source(src)
    assert fixed.count("field(default_factory=ByteEncoder)") == 8 and "InitVar, field" in fixed
    assert patched_source(fixed) == fixed


def test_lava_installed_is_patched():
    r = subprocess.run([sys.executable, "-c", "import lava.magma.compiler.var_model"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-500:]


def test_cli_data_check(capsys, data_root):
    assert main(["data", "check", "--data-root", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert out.count(" OK ") == 4


def test_cli_data_check_reports_missing(capsys, tmp_path):
    assert main(["data", "check", "--data-root", str(tmp_path)]) == 2
    assert str(tmp_path / "mnist") in capsys.readouterr().out


def test_cli_errors_are_one_line_naming_the_path(capsys, tmp_path):
    assert main(["train", "--quick", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "error: missing dataset directory" in err and str(tmp_path / "mnist") in err
    assert "Traceback" not in err
    assert main(["export", str(tmp_path / "none.pt"), "--to", "nir"]) == 2
    assert "none.pt" in capsys.readouterr().err
