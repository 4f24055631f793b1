"""The registry of synapse models: name → (model class, parameter dataclass), and per-layer factories.

Every layer, builder and config validates synapse names and parameters here and nowhere else:

* :func:`register_synapse` adds a model (a :class:`~metaspin_snn.synapses.base.SynapseModel` subclass
  with a frozen parameter dataclass) under a name; the library's own models are registered lazily, so
  importing this module imports no model code.
* A name of the form ``"package.module:ClassName"`` (in a config or on the command line) is imported on
  demand; its parameter dataclass is ``ClassName.Params`` or the annotation of ``params`` in its
  ``__init__``.
* :func:`layer_synapse_factories` turns ``(name, n_layers, seed, **params)`` into one factory
  ``shape → SynapseModel`` per layer; a list given for a scalar field is one value per layer; layer
  ``i`` gets ``seed·1000 + i``; every layer's parameters are validated (:class:`SynapseParamsError`
  names the key and layer).
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import itertools
import typing
from typing import Any, Callable

from .base import SynapseModel

#: Name of the ordinary real-valued weights (trained by the torch optimiser; no synapse model).
REAL = "real"

# name → (module, class, params class) of the library's models, imported on first use.
_BUILTIN: dict[str, tuple[str, str, str]] = {
    "metaplastic": ("metaspin_snn.synapses.metaplastic", "MetaplasticBinary", "MetaplasticBinaryParams"),
    "mesu": ("metaspin_snn.synapses.mesu", "MESU", "MESUParams"),
    "bayesbinn": ("metaspin_snn.synapses.bayesbinn", "BayesianBinary", "BayesianBinaryParams"),
    "mtj": ("metaspin_snn.synapses.mtj", "MetaplasticMTJ", "MTJParams"),
    "magnetoionic": ("metaspin_snn.synapses.magnetoionic", "MagnetoIonicPair", "MagnetoIonicParams"),
}
_REGISTERED: dict[str, tuple[type, type]] = {}

#: The built-in synapse names (``"real"`` first), for choices lists of commands and configs.
BUILTIN_SYNAPSES: tuple[str, ...] = (REAL, *_BUILTIN)


def synapse_names() -> tuple[str, ...]:
    """Every registered name: ``"real"``, the built-in models, then user registrations."""
    return (*BUILTIN_SYNAPSES, *(n for n in _REGISTERED if n not in _BUILTIN))


def is_import_path(name: str) -> bool:
    """``"package.module:ClassName"`` (a user's class named in a config)."""
    mod, sep, cls = name.partition(":")
    return bool(sep and mod and cls and all(p.isidentifier() for p in mod.split(".")) and cls.isidentifier())


def import_object(path: str, what: str = "object") -> Any:
    """Import ``"package.module:Name"``; a clear ``ValueError`` when the module or name is missing."""
    if not is_import_path(path):
        raise ValueError(f"{what} {path!r}: expected 'package.module:ClassName'")
    mod_name, _, attr = path.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"{what} {path!r}: cannot import module {mod_name!r} ({e})") from e
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise ValueError(f"{what} {path!r}: module {mod_name!r} has no {attr!r}") from None


def params_class_of(cls: type) -> type:
    """The parameter dataclass of a synapse class: ``cls.Params``, else the annotation of the
    ``params`` argument of ``cls.__init__``."""
    p = getattr(cls, "Params", None)
    if p is None:
        try:
            hints = typing.get_type_hints(cls.__init__)
        except Exception:  # unresolvable forward references
            hints = {}
        p = hints.get("params")
        if p is None:
            ann = inspect.signature(cls.__init__).parameters.get("params")
            p = None if ann is None or ann.annotation is inspect.Parameter.empty else ann.annotation
    if not (isinstance(p, type) and dataclasses.is_dataclass(p)):
        raise ValueError(f"synapse class {cls.__name__}: cannot find its parameter dataclass (set "
                         f"{cls.__name__}.Params or annotate __init__(self, shape, params: MyParams))")
    return p


def _check_pair(name: str, cls: Any, params_cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, SynapseModel)):
        raise ValueError(f"synapse {name!r}: {cls!r} is not a SynapseModel subclass")
    if not (isinstance(params_cls, type) and dataclasses.is_dataclass(params_cls)):
        raise ValueError(f"synapse {name!r}: parameters {params_cls!r} are not a dataclass")


def register_synapse(name: str, cls: type, params_cls: type | None = None, *, replace: bool = False) -> None:
    """Make ``cls`` (a :class:`SynapseModel` subclass) available as ``synapse = name`` in configs,
    :func:`layer_synapse_factories` and ``build_model``. ``params_cls`` defaults to
    :func:`params_class_of`. Built-in names cannot be replaced; a user name only with ``replace``."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"register_synapse: name must be a non-empty string without ':', got {name!r}")
    if name in BUILTIN_SYNAPSES:
        raise ValueError(f"register_synapse: {name!r} is a built-in synapse name")
    if name in _REGISTERED and not replace:
        raise ValueError(f"register_synapse: {name!r} is already registered (pass replace=True)")
    params_cls = params_class_of(cls) if params_cls is None else params_cls
    _check_pair(name, cls, params_cls)
    _REGISTERED[name] = (cls, params_cls)


def unregister_synapse(name: str) -> None:
    """Remove a user registration (tests, notebooks)."""
    _REGISTERED.pop(name, None)


def check_synapse_name(name: str) -> None:
    """``ValueError`` unless ``name`` is registered, ``"real"`` or an importable ``module:Class``."""
    if name == REAL or name in _BUILTIN or name in _REGISTERED:
        return
    if is_import_path(name):
        get_synapse(name)
        return
    raise ValueError(f"unknown synapse {name!r}; choose one of {', '.join(synapse_names())} "
                     "or name your own class as 'package.module:ClassName'")


def get_synapse(name: str) -> tuple[type, type]:
    """(model class, parameter dataclass) of a synapse name other than ``"real"``."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        module, cls_name, params_name = _BUILTIN[name]
        try:
            mod = importlib.import_module(module)
            return getattr(mod, cls_name), getattr(mod, params_name)
        except (ImportError, AttributeError) as e:
            raise ImportError(f"synapse {name!r} needs {module}.{cls_name}, which is not available: {e}") from e
    if is_import_path(name):
        cls = import_object(name, "synapse")
        if not (isinstance(cls, type) and issubclass(cls, SynapseModel)):
            raise ValueError(f"synapse {name!r}: not a SynapseModel subclass")
        pc = params_class_of(cls)
        _check_pair(name, cls, pc)
        return cls, pc
    check_synapse_name(name)  # raises with the list of names
    raise AssertionError("unreachable")


class SynapseParamsError(ValueError):
    """A bad ``synapse_params`` entry: ``key`` names it (``"synapse_params.m"``, or ``"synapse_params"``
    when the parameter dataclass rejects a layer's settings), ``layer`` the layer (or None)."""

    def __init__(self, key: str, detail: str, layer: int | None = None) -> None:
        self.key, self.detail, self.layer = key, detail, layer
        super().__init__(f"{key}{self.where}: {detail}")

    @property
    def where(self) -> str:
        """``" (layer i)"`` or ``""``."""
        return "" if self.layer is None else f" (layer {self.layer})"


@dataclasses.dataclass(frozen=True)
class LayerSynapseFactory:
    """``shape → cls(shape, params)`` for one layer with fixed (validated) parameters; picklable."""
    cls: type
    params: Any

    def __call__(self, shape: tuple[int, ...]) -> SynapseModel:
        return self.cls(shape, self.params)


@dataclasses.dataclass(frozen=True)
class SynapseSpec:
    """Resolved synapse settings: the model class, its parameter dataclass, values shared by all
    layers and per-layer value lists (a list given for a field whose default is not a tuple)."""
    cls: type
    params_cls: type
    shared: dict[str, Any]
    per_layer: dict[str, list[Any]]

    def layer_params(self, layer: int, seed: int) -> Any:
        """The parameter dataclass of layer ``layer``; its ``seed`` is ``seed·1000 + layer`` unless given."""
        for k, v in self.per_layer.items():
            if layer >= len(v):
                raise SynapseParamsError(f"synapse_params.{k}", f"{len(v)} per-layer values, no value for layer {layer}")
        kw = {**self.shared, **{k: v[layer] for k, v in self.per_layer.items()}}
        if "seed" in {f.name for f in dataclasses.fields(self.params_cls)} and "seed" not in kw:
            kw["seed"] = int(seed) * 1000 + layer
        try:
            return self.params_cls(**kw)
        except (ValueError, TypeError) as e:
            raise SynapseParamsError("synapse_params", str(e), layer) from e


def synapse_spec(name: str, params: dict[str, Any]) -> SynapseSpec | None:
    """Check ``name`` and the parameter names (None for ``"real"``); split list values into per-layer
    lists (scalar fields) or tuples (tuple fields such as ``betas``)."""
    check_synapse_name(name)
    if name == REAL:
        if params:
            raise SynapseParamsError(f"synapse_params.{sorted(params)[0]}",
                                     f"synapse 'real' takes no parameters, got {sorted(params)}")
        return None
    cls, params_cls = get_synapse(name)
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    params = _nest_dotted(params, fields)
    if "preset" in params and "preset" in fields and name in _BUILTIN:
        from .devices import resolve_preset
        try:
            params = resolve_preset(name, params)
        except ValueError as e:
            raise SynapseParamsError("synapse_params.preset", str(e)) from None
    shared: dict[str, Any] = {}
    per_layer: dict[str, list[Any]] = {}
    for k, v in params.items():
        if k not in fields:
            raise SynapseParamsError(f"synapse_params.{k}", f"unknown parameter of {params_cls.__name__} "
                                     f"(known: {', '.join(fields)})")
        if isinstance(v, list) and not isinstance(fields[k].default, tuple):
            per_layer[k] = list(v)
        else:
            shared[k] = tuple(v) if isinstance(v, list) else v
    return SynapseSpec(cls, params_cls, shared, per_layer)


def _nest_dotted(params: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """``{"nonideal.d2d": False}`` (a ``--set synapse_params.nonideal.d2d=false``) or a nested table
    → ``{"nonideal": {"d2d": False}}`` for a field whose value is a table of switches."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        head, dot, sub = k.partition(".")
        if dot and head in fields:
            table = out.setdefault(head, {})
            if not isinstance(table, dict):
                raise SynapseParamsError(f"synapse_params.{k}", f"{head} is already set to {table!r}")
            table[sub] = v
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def layer_synapse_factories(name: str, n_layers: int, *, seed: int = 0,
                            **params: Any) -> list[Callable[[tuple[int, ...]], SynapseModel]] | None:
    """One factory ``shape → SynapseModel`` per synapse layer (``"real"`` → None: plain weights).

    ``params`` are fields of the model's parameter dataclass; a list for a scalar field gives one
    value per layer (e.g. ``m=[1, 3, 3]``). Layer ``i`` gets ``seed = seed·1000 + i``. Every layer's
    parameters are validated here; a bad one raises :class:`SynapseParamsError` naming the key."""
    spec = synapse_spec(name, params)
    if spec is None:
        return None
    for k, v in spec.per_layer.items():
        if len(v) != n_layers:
            raise SynapseParamsError(f"synapse_params.{k}", f"{len(v)} per-layer values for {n_layers} layers")
    return [LayerSynapseFactory(spec.cls, spec.layer_params(li, seed)) for li in range(n_layers)]


def config_synapse_factories(name: str, n_layers: int, seed: int = 0,
                             **params: Any) -> list[Callable[[tuple[int, ...]], SynapseModel]] | None:
    """:func:`layer_synapse_factories` with errors naming the config key (``'synapse'``,
    ``'synapse_params.<k>'``), as configs and model specs report them."""
    try:
        return layer_synapse_factories(name, n_layers, seed=seed, **params)
    except SynapseParamsError as e:
        raise ValueError(f"config key '{e.key}'{e.where}: {e.detail}") from e
    except ValueError as e:  # unknown synapse name
        raise ValueError(f"config key 'synapse': {e}") from e


def synapse_factory(name: str, *, seed: int = 0,
                    **overrides: Any) -> Callable[[tuple[int, ...]], SynapseModel] | None:
    """One factory ``shape → SynapseModel`` for all layers of a hand-built network (``"real"`` → None):
    the k-th call builds layer k with the parameters :func:`layer_synapse_factories` would give it."""
    spec = synapse_spec(name, overrides)
    if spec is None:
        return None
    counter = itertools.count()

    def make(shape: tuple[int, ...]) -> SynapseModel:
        return spec.cls(shape, spec.layer_params(next(counter), seed))

    return make


def default_synapse_params(name: str, n_train: int, batch_size: int) -> dict[str, Any]:
    """Per-model settings that depend on the data or on this library's spiking networks, applied
    unless a config sets them: BayesBiNN's N = training-set size (its ``train_set_size``); pulse
    scales of the device models for a mean-reduced cross-entropy through a spiking MLP (magneto-ionic
    ``lr`` in pulses per unit gradient, results/README.md; MTJ: RMS-normalised, calibrated write drive
    P_sw = p_per_grad·|g| for a plastic device, bidirectional gating with κ per unit normalised
    gradient, chosen on the validation split in results/devices/README.md). MESU and BayesBiNN otherwise keep their
    authors' defaults (MESU's lr 1 with the summed loss of its ``PROTOCOL``). User models: their
    class attribute ``DATA_DEFAULTS(n_train, batch_size) -> dict`` if they define one."""
    if name == "bayesbinn":
        return {"n_data": float(n_train)}
    if name == "mtj":  # the controller normalises ∂L/∂w by its RMS (results/devices/README.md: the sweep)
        return {"grad_norm": "rms", "write_drive": "calibrated", "p_per_grad": 0.04, "kappa": 0.02,
                "gate_mode": "bidirectional"}
    if name == "magnetoionic":
        return {"lr": 100.0}
    if name != REAL and name not in _BUILTIN:
        hook = getattr(get_synapse(name)[0], "DATA_DEFAULTS", None)
        return dict(hook(n_train, batch_size)) if callable(hook) else {}
    return {}
