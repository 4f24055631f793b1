"""Griffe extension for the API pages: follow PEP 562 lazy exports.

A package such as ``metaspin_snn.export`` imports its public names lazily: a module-level
``__getattr__`` looks the name up in a literal table ``_NAMES = {"name": "submodule", ...}`` and imports
``.submodule`` on first access (so that importing the package stays cheap). Static analysis sees
neither the names nor ``__all__`` (``sorted(_NAMES)`` is computed). This extension reads the table
from the module's source and adds one alias per name (``name`` → ``<package>.<submodule>.name``) and
sets the package's exports to the table's keys, so ``::: metaspin_snn.export`` renders exactly the
names ``from metaspin_snn.export import name`` gives — whatever submodule each one currently lives in.

Loaded by mkdocstrings through ``mkdocs.yml`` (``extensions: [docs/api/griffe_lazy_exports.py]``);
not part of the site (``exclude_docs``) nor of the package.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import griffe

TABLE = "_NAMES"


def _lazy_table(source: str) -> dict[str, str] | None:
    """The literal ``_NAMES`` dict of a module that also defines a module-level ``__getattr__``."""
    tree = ast.parse(source)
    has_getattr = any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body)
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if has_getattr and any(isinstance(t, ast.Name) and t.id == TABLE for t in targets):
            table = ast.literal_eval(value)
            if isinstance(table, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
                return table
    return None


class LazyExports(griffe.Extension):
    """Turn a lazy-import table into exported aliases (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        for mod in _modules(pkg):
            if not isinstance(mod.filepath, Path) or mod.filepath.suffix != ".py":
                continue
            table = _lazy_table(mod.filepath.read_text(encoding="utf-8"))
            if not table:
                continue
            for name, sub in table.items():
                target = f"{mod.path}.{sub.lstrip('.')}.{name}"
                if name not in mod.members:
                    mod.set_member(name, griffe.Alias(name, target, parent=mod))
            mod.exports = list(table)


def _modules(mod: griffe.Module):
    yield mod
    for member in mod.modules.values():
        yield from _modules(member)
