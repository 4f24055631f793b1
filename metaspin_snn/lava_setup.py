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


# A tiny Dense + LIF network run in Lava's CPU simulator (floating point), in a fresh interpreter.
# Lava float LIF (see shared/notes/lava.md): u[t] = (1-du)u[t-1] + a_in[t]; v[t] = (1-dv)v[t-1] + u[t];
# spike if v > vth then v <- 0; Dense delivers W·s[t-1] (one-step delay). The child checks its raster
# against that recursion computed in numpy and prints the number of output spikes.
_SMOKE = r"""
import numpy as np
from lava.proc.dense.process import Dense
from lava.proc.lif.process import LIF
from lava.proc.io.source import RingBuffer as Source
from lava.proc.io.sink import RingBuffer as Sink
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
rng = np.random.default_rng(0)
T, n_in, n_out, dv, vth = 30, 6, 4, 0.2, 1.0
s_in = (rng.random((n_in, T)) < 0.4).astype(float)
W = rng.normal(0.6, 0.5, (n_out, n_in))
src = Source(data=s_in); dense = Dense(weights=W); lif = LIF(shape=(n_out,), du=1.0, dv=dv, vth=vth)
sink = Sink(shape=(n_out,), buffer=T)
src.s_out.connect(dense.s_in); dense.a_out.connect(lif.a_in); lif.s_out.connect(sink.a_in)
try:
    lif.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
    got = sink.data.get()
finally:
    lif.stop()
v = np.zeros(n_out); want = np.zeros((n_out, T)); prev = np.zeros(n_in)
for t in range(T):
    v = (1 - dv) * v + W @ prev
    want[:, t] = v > vth
    v[v > vth] = 0.0
    prev = s_in[:, t]
assert np.array_equal(got, want), "Lava raster differs from the LIF recursion"
print(int(got.sum()))
"""


def lava_smoke_test(timeout: float = 120.0) -> tuple[bool, str]:
    """Run a tiny Dense+LIF Lava network in an isolated process group; (ok, message).

    The child is started in its own session and its whole process group is killed on timeout, so
    Lava's worker processes never outlive the check."""
    import os
    import signal
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    proc = subprocess.Popen([sys.executable, "-c", _SMOKE], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return False, f"Lava smoke test timed out after {timeout:.0f} s (process group killed)"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # stray workers, if any
        except ProcessLookupError:
            pass
    if proc.returncode != 0:
        tail = (err or "").strip().splitlines()[-3:]
        return False, "Lava smoke test failed: " + " | ".join(tail)
    return True, f"Lava Dense+LIF ran, raster matches the LIF equations ({out.strip()} output spikes)"


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
