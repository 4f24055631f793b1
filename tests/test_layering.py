"""The package's layering: dependencies point down only, and each allowed-value list has one owner."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "metaspin_snn"
# package → the sub-packages it must never import
FORBIDDEN = {"synapses": ("networks", "continual", "export", "cli"),
             "data": ("networks", "continual", "export", "cli", "synapses"),
             "networks": ("continual", "export", "cli"),
             "export": ("continual", "cli"),
             "continual": ("export", "cli", "theory"),
             "theory": ("continual", "export", "cli")}


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text())
    pkg = ["metaspin_snn", *path.relative_to(PKG).parent.parts]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = pkg[:len(pkg) - node.level + 1] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_down(package):
    bad = []
    for f in sorted((PKG / package).rglob("*.py")):
        for mod in _imports(f):
            parts = mod.split(".")
            if parts[0] == "metaspin_snn" and len(parts) > 1 and parts[1] in FORBIDDEN[package]:
                bad.append(f"{f.relative_to(PKG)} imports {mod}")
    assert not bad, "\n".join(bad)


def test_one_module_per_command():
    from metaspin_snn import cli
    assert set(cli.COMMANDS) == {"info", "data", "train", "run", "export", "theory", "devices", "retention", "sweep"}
    for name, mod in cli.COMMANDS.items():
        assert mod.__name__ == f"metaspin_snn.cli.{name}" and callable(mod.main) and callable(mod.add_args)
    assert not (PKG / "networks" / "train.py").exists() and not (PKG / "continual" / "cli.py").exists()


def test_allowed_values_are_defined_once():
    from metaspin_snn.continual import config as C
    from metaspin_snn.continual.plugins import PLUGINS
    from metaspin_snn.networks import models as Mo
    from metaspin_snn.networks import training as Tr
    from metaspin_snn.synapses.registry import BUILTIN_SYNAPSES
    assert C.SYNAPSES is BUILTIN_SYNAPSES
    assert C.NORMS == ("none", *(n for n in Mo.NORMS if n))
    for key, owner in (("reset", Mo.NET_RESETS), ("output", Mo.OUTPUTS), ("neuron", Mo.NEURONS),
                       ("optimizer", Tr.OPTIMIZERS)):
        for v in owner:
            C.RunConfig(**{key: v})                     # every value the owner allows is accepted …
        with pytest.raises(ValueError, match=f"'{key}'"):
            C.RunConfig(**{key: "bogus"})               # … and nothing else
    with pytest.raises(ValueError, match="'reset'"):
        C.RunConfig(reset="none")                       # the networks reject it, so the config does
    for name in PLUGINS:
        C.RunConfig(plugin=name)
