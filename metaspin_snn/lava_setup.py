"""Make lava-nc 0.10.0 importable on Python 3.11 (run by ``install.sh``).

lava-nc 0.10.0 declares ``Requires-Python <3.11``; on 3.11 its module
``lava/magma/compiler/var_model.py`` fails at import because eight dataclass fields use an instance
of another dataclass as default (``x: ByteEncoder = ByteEncoder()``), which Python 3.11's dataclass
check rejects ("mutable default ... use default_factory"). This module rewrites exactly those fields
to ``field(default_factory=ByteEncoder)``: the runtime behaviour is unchanged (each instance gets its
own fresh ``ByteEncoder``, as intended). The rewrite is idempotent and atomic (write then rename).

Usage: ``python -m metaspin_snn.lava_setup`` (exit 0 when Lava imports afterwards).
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

_FIELD = re.compile(r"^(\s+\w+): ByteEncoder = ByteEncoder\(\)$", re.MULTILINE)
_IMPORT = "from dataclasses import dataclass, InitVar\n"
_IMPORT_FIXED = "from dataclasses import dataclass, InitVar, field\n"
EXPECTED_FIELDS = 8


def var_model_path() -> Path:
    """Location of lava's ``var_model.py`` found without importing lava (its import is what fails)."""
    spec = importlib.util.find_spec("lava")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "lava-nc is not installed in this environment; run ./install.sh "
            "(pip install --no-deps --ignore-requires-python lava-nc==0.10.0)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "magma" / "compiler" / "var_model.py"


def patched_source(src: str) -> str:
    """Return ``src`` with the ByteEncoder defaults turned into ``default_factory`` fields."""
    if not _FIELD.search(src):
        return src
    n = len(_FIELD.findall(src))
    if n != EXPECTED_FIELDS or _IMPORT not in src:
        raise RuntimeError(
            f"lava var_model.py does not look like lava-nc 0.10.0 ({n} ByteEncoder defaults, "
            f"expected {EXPECTED_FIELDS}); refusing to patch"
        )
    src = src.replace(_IMPORT, _IMPORT_FIXED, 1)
    return _FIELD.sub(r"\1: ByteEncoder = field(default_factory=ByteEncoder)", src)


def patch_lava(path: Path | None = None) -> bool:
    """Apply the fix in place; return True when the file was changed, False when already fixed."""
    path = var_model_path() if path is None else path
    src = path.read_text()
    new = patched_source(src)
    if new == src:
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".var_model.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(new)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def main() -> int:
    changed = patch_lava()
    # Import in a fresh interpreter: proves the fix without fixing this process's start method.
    res = subprocess.run([sys.executable, "-c", "import lava.magma.compiler.compiler"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        print("lava-nc still fails to import after the fix", file=sys.stderr)
        return 1
    print(f"lava-nc: {'patched for Python 3.11' if changed else 'already patched'}; imports OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
