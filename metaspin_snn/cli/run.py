"""``metaspin run``: a continual-learning stream from a TOML config or a shorthand name.

Output: ``--out D`` (refused when D is not empty, unless ``--resume`` or ``--overwrite``), by default
``runs/<target>[-quick]/<UTC time>-<config hash>/`` — one sub-folder per learner when the shorthand
compares several, each with ``results.json``, ``checkpoint.pt`` (``metaspin export`` reads it), CSV logs
and reports.


    metaspin run configs/pmnist.toml [--epochs 1 ...]
    metaspin run pmnist|split-mnist|sequence|rotated|stream|split-nmnist|split-dvsgesture|split-shd [--quick]
    metaspin run split-mnist --learner online [--set train_subset=2000]   (OnlineSNN, no BPTT)
    metaspin run split-mnist --plugin replay [--set plugin_params.mem_per_task=200]   (experience replay)

A shorthand without ``--synapse``/``--plugin`` compares four learners on one network (spike-count
readout): fine-tuning and SI with real weights, the metaplastic binary network (m = ``--m``, default
10 with ``--quick``, 3 otherwise; ``--m`` and ``--set synapse_params.*`` go to this learner) and MESU
(``_MESU_SP``), each in its own worker process (``--jobs``, default one per core). With
``--synapse``/``--plugin`` it runs that one learner. Shorthand runs use no biases (see
``_DEFAULT_M``). ``--quick`` shrinks the run to about a minute on two cores (3 tasks × 10,000
training and 2,000 test samples, 2 epochs, batch 50, T = 4, 784-256-256-10, direct-current input).
"""
from __future__ import annotations

import argparse
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from ..continual.config import LEARNERS, STREAMS, RunConfig, load_config, set_dotted
from ..continual.plugins import ALIASES, PLUGINS
from ..continual.runner import config_hash
from ..continual.scenarios import SCENARIOS
from ..files import atomic_write_bytes, check_out_dir
from ..synapses.registry import BUILTIN_SYNAPSES

HELP = "run a continual-learning stream"

# Full-size defaults of the shorthands (the calibration network for MNIST-like streams).
_BASE: dict[str, Any] = dict(hidden=[512, 512], num_steps=8, batch_size=100, epochs=3, encoding="direct",
                             lr=1e-3, scenario="domain", bias=False)
_SHORTHAND: dict[str, dict[str, Any]] = {
    "pmnist": dict(stream="pmnist", n_tasks=5),
    "split-mnist": dict(stream="split-mnist", n_tasks=5),
    "rotated": dict(stream="rotated", n_tasks=5),
    "sequence": dict(stream="sequence"),
    "stream": dict(stream="stream", n_tasks=20, epochs=1, batch_size=10, train_subset=1000),
    # event streams: frames at the dataset's default binning (data.events.EVENT_DATASETS)
    "split-nmnist": dict(stream="split-nmnist", n_tasks=5, hidden=[256, 256], epochs=10, batch_size=20),
    "split-dvsgesture": dict(stream="split-dvsgesture", n_tasks=5, hidden=[256, 256], epochs=10, batch_size=16),
    "split-shd": dict(stream="split-shd", n_tasks=5, classes_per_task=4, hidden=[256, 256], epochs=10,
                      batch_size=32),
}
# --quick on the event streams: 3 epochs, every recording of the subset / generated files, at most
# 1,000 training recordings per task on full data.
_QUICK_EVENTS: dict[str, Any] = dict(epochs=3, train_subset=1000, test_subset=None)
_QUICK: dict[str, Any] = dict(hidden=[256, 256], num_steps=4, epochs=2, batch_size=50, train_subset=10000,
                              test_subset=2000)
_QUICK_TASKS = {"pmnist": 3, "rotated": 3, "stream": 5}
# m of the metaplastic learner when --m is not given. m acts through m·|W_h|, and |W_h| grows with
# the training per task: with --quick (400 steps per task) |W_h| reaches ≈ 1–4 and m = 10 with Adam's
# ε = 2·10⁻⁵ was the best of the screened settings (results/README.md §11); with the full defaults (1,800 steps per task) |W_h| reaches ≈ 20–30, m = 5 freezes the
# network after 3 tasks and m = 3 is used (results/README.md). Biases are off by default: plain-Adam
# biases are unprotected and overwrite old tasks once the binary weights consolidate.
_DEFAULT_M = {"quick": 10.0, "full": 3.0}
# The compared learners' other hyper-parameters (chosen on the quick setting's validation split,
# results/README.md §12): Adam's ε as the metaplastic ratchet's importance threshold (§9), SI's c, and
# MESU with two antithetic Monte-Carlo samples and a non-negative curvature term (MESUParams). MESU's
# gain ¼ brings the authors' initialisation (RMS 4/√(3·fan_in)) to PyTorch's scale for the spike-count
# readout; a step moves gain·μ by lr·gain²·σ²·ḡ, so lr_μ = 48, lr_σ = 16 at gain ¼ are lr_μ = 3,
# lr_σ = 1 at the authors' gain 1.
_DEFAULT_META: dict[str, dict[str, Any]] = {"quick": {"eps": 2e-5}, "full": {}}
_SI_C = 3.0
_MESU_GAIN = 0.25
_MESU_SP: dict[str, Any] = {"antithetic": True, "shrink_only": True, "lr_mu": 48.0, "lr_sigma": 16.0}
# Rate-code steps of the online learner's shorthand (OnlineConfig's default, as in bench/online_split_mnist.py).
_ONLINE_STEPS = 25


def add_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``metaspin run``."""
    parser.add_argument("target", help=f"a TOML config file, or one of: {', '.join(STREAMS)}")
    parser.add_argument("--tasks", type=int, help="number of tasks")
    parser.add_argument("--epochs", type=int, help="epochs per task")
    parser.add_argument("--synapse", help=f"synapse model: {', '.join(BUILTIN_SYNAPSES)}, a registered name or "
                        "package.module:Class (default: compare real/binary/metaplastic)")
    parser.add_argument("--m", type=str, help="metaplasticity m (one value, or comma-separated per layer)")
    parser.add_argument("--plugin", help=f"continual-learning algorithm(s): {', '.join([*PLUGINS, *ALIASES])}, "
                        "several joined by '+' (replay+si), or package.module:Class "
                        "(parameters: --set plugin_params.<name>=...)")
    parser.add_argument("--learner", choices=LEARNERS,
                        help="bptt: network + optimiser (default); online: OnlineSNN, local event-driven rule, "
                             "one sample at a time (options: --set online_params.<field>=...)")
    parser.add_argument("--scenario", choices=SCENARIOS, help="van de Ven & Tolias scenario")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--device", type=str, help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--out", type=str, help="output folder, refused if not empty unless --resume/--overwrite "
                        "(default runs/<target>/<UTC time>-<config hash>/; results/ holds the published tables)")
    parser.add_argument("--overwrite", action="store_true", help="allow a non-empty --out (its files are replaced)")
    parser.add_argument("--quick", action="store_true", help="small, fast version (minutes on 2 cores)")
    parser.add_argument("--data-root", type=str, help="folder holding mnist/ and nmnist-small/")
    parser.add_argument("--sequence-dirs", nargs="+", help="MNIST-format directories, one per task (sequence)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in the output directory")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--jobs", type=int, help="learners of a comparison trained at once, each in its own "
                        "process (default: one per CPU core, at most one per learner)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any RunConfig key, value in TOML syntax (e.g. --set norm='\"batch\"' "
                             "--set hidden=[256,256] --set synapse_params.lr=0.01); repeatable")


def _parse_m(text: str) -> float | list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError as e:
        raise ValueError(f"--m: expected a number or comma-separated numbers, got {text!r}") from e
    return vals[0] if len(vals) == 1 else vals


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, Any] = {}
    for key, attr in (("n_tasks", "tasks"), ("epochs", "epochs"), ("synapse", "synapse"), ("plugin", "plugin"),
                      ("scenario", "scenario"), ("seed", "seed"), ("data_root", "data_root"),
                      ("learner", "learner"), ("device", "device")):
        v = getattr(args, attr, None)
        if v is not None:
            o[key] = v
    if args.sequence_dirs:
        o["sequence_dirs"] = list(args.sequence_dirs)
        o.setdefault("n_tasks", len(args.sequence_dirs))
    if args.no_progress:
        o["progress"] = False
    return parse_set_items(args.set, o)


def parse_set_items(items: list[str], into: dict[str, Any] | None = None) -> dict[str, Any]:
    """``--set KEY=VALUE`` items (value in TOML syntax, a bare word taken as a string; ``table.key``
    sets one entry of a table) applied in order to ``into`` (a new dict by default), which is returned."""
    o = {} if into is None else into
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare word is taken as a string
        set_dotted(o, key, value)
    return o


_PENDING = "<pending>"  # placeholder root until the configs' hash is known


def build_configs(args: argparse.Namespace) -> list[RunConfig]:
    """The run(s) a command line asks for; every config is validated here (before any training).
    Output: ``--out`` as given, else ``runs/<target>[-quick]/<UTC time>-<hash of the configs>/``
    (a sub-folder per learner when several are compared)."""
    configs = _build_configs(args)
    if args.out or all(c.out != _PENDING and not c.out.startswith(_PENDING + "/") for c in configs):
        return configs
    if getattr(args, "resume", False):
        raise ValueError("--resume needs --out: the folder of the run to continue")
    import datetime
    import hashlib
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    h = hashlib.sha256("".join(config_hash(c) for c in configs).encode()).hexdigest()[:8]
    name = Path(args.target).stem if args.target.endswith(".toml") else args.target
    root = Path("runs") / (name + ("-quick" if args.quick else "")) / f"{stamp}-{h}"
    return [c.replace(out=str(root) + c.out[len(_PENDING):]) for c in configs]


def run_root(configs: list[RunConfig]) -> Path:
    """The folder a command writes into: the run's own, or the parent of compared learners' folders."""
    return Path(configs[0].out) if len(configs) == 1 else Path(configs[0].out).parent


def _build_configs(args: argparse.Namespace) -> list[RunConfig]:
    o = _overrides(args)
    m = _parse_m(args.m) if args.m is not None else None
    if args.target.endswith(".toml") or Path(args.target).is_file():
        cfg = load_config(args.target)
        if args.quick:
            o = {**{k: v for k, v in _QUICK.items()}, "n_tasks": min(cfg.n_tasks, 3)
                 if cfg.stream in _QUICK_TASKS else cfg.n_tasks, **o}
        for table in ("synapse_params", "plugin_params", "online_params"):
            if table in o:
                o[table] = {**getattr(cfg, table), **o[table]}
        if m is not None:
            o["synapse_params"] = {**o.get("synapse_params", cfg.synapse_params), "m": m}
        if "synapse" in o and o["synapse"] != cfg.synapse and "synapse_params" not in o:
            o["synapse_params"] = {}
        cfg = cfg.replace(**o)
        out = args.out or cfg.out or _PENDING
        return [cfg.replace(out=out)]
    if args.target not in _SHORTHAND:
        raise ValueError(f"run target {args.target!r}: not a .toml file nor one of {', '.join(_SHORTHAND)}")
    base = {**_BASE, **_SHORTHAND[args.target]}
    if args.quick:
        base.update(_QUICK)
        if args.target in _QUICK_TASKS:
            base["n_tasks"] = _QUICK_TASKS[args.target]
        if args.target == "stream":
            base.update(epochs=1, train_subset=1000)
        if base["stream"] in ("split-nmnist", "split-dvsgesture", "split-shd"):
            base.update(_QUICK_EVENTS)
    user_sp = dict(o.pop("synapse_params", {}))
    default_m = _DEFAULT_M["quick" if args.quick else "full"]
    base.update(o)
    if base.get("stream") == "sequence" and "sequence_dirs" not in base:
        raise ValueError("run sequence: give the datasets with --sequence-dirs DIR [DIR ...]")
    root = Path(args.out) if args.out else Path(_PENDING)
    if o.get("learner") == "online":  # one OnlineSNN run: one pass per task, T = 25 rate-coded steps
        if "synapse" in o or m is not None or user_sp:
            raise ValueError("--learner online: uses its own plasticity rule; set it with "
                             "--set online_params.<field>=... instead of --synapse/--m/synapse_params")
        on = {**base, "epochs": o.get("epochs", 1), "num_steps": o.get("num_steps", _ONLINE_STEPS)}
        if args.quick:
            on.update(train_subset=o.get("train_subset", 1000), test_subset=o.get("test_subset", 1000))
        rule = o.get("online_params", {}).get("rule", "pmp")
        return [RunConfig.from_dict({**on, "name": f"online-{rule}", "out": str(root)})]
    if "synapse" in o or "plugin" in o:
        syn = o.get("synapse", "metaplastic" if m is not None else "real")
        sp = dict(user_sp)
        if syn == "metaplastic":
            sp = {**_DEFAULT_META["quick" if args.quick else "full"], **sp}
            sp["m"] = m if m is not None else sp.get("m", default_m)
        elif m is not None:
            sp["m"] = m  # rejected by validation, naming the key, if the model has no m
        if syn == "mesu" and base.get("norm", "none") == "none":
            # MESU's σ²-scaled raw-gradient steps kill a spike-count readout without normalisation
            # (results/README.md §8): membrane readout and gain 1 unless the command line sets them
            base = {"output": "membrane", "gain": 1.0, **base}
        return [RunConfig.from_dict({**base, "synapse": syn, "synapse_params": sp,
                                     "name": f"{syn}-{o.get('plugin', 'naive')}", "out": str(root)})]
    mm = m if m is not None else user_sp.get("m", default_m)
    meta_sp = {**_DEFAULT_META["quick" if args.quick else "full"], **user_sp, "m": mm}
    # the comparison: one network for every learner (readout: output spike counts), the hyper-parameters
    # chosen on the quick setting's validation split (results/README.md §12)
    learners: list[tuple[str, dict[str, Any]]] = [
        ("finetune-real", {"synapse": "real", "synapse_params": {}}),
        ("si-real", {"synapse": "real", "synapse_params": {}, "plugin": "si",
                     "plugin_params": {"c": _SI_C, **base.get("plugin_params", {})}}),
        (f"metaplastic-m{mm}" if not isinstance(mm, list) else "metaplastic-per-layer",
         {"synapse": "metaplastic", "synapse_params": meta_sp}),
        ("mesu", {"synapse": "mesu", "synapse_params": dict(_MESU_SP), "gain": base.get("gain", _MESU_GAIN),
                  "train_samples": base.get("train_samples", 2), "eval_samples": base.get("eval_samples", 0)})]
    return [RunConfig.from_dict({**base, **kw, "name": n, "out": str(root / n)}) for n, kw in learners]


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:6.1f}"


def summary_table(results: list[Any]) -> str:
    """Markdown table, one row per run: ACC, BWT, FWT, forgetting, intransigence, final row."""
    lines = ["| run | synapse | plugin | scenario | ACC | BWT | FWT | forgetting | intransigence | final R[T-1, j] (%) | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c, m = r.config, r.metrics
        sp = "".join(f" {k}={v}" for k, v in c["synapse_params"].items())
        if c.get("learner") == "online":
            c = {**c, "synapse": "online", "synapse_params": c.get("online_params", {})}
            sp = "".join(f" {k}={v}" for k, v in c["synapse_params"].items())
        final = " ".join(f"{100 * v:.1f}" for v in r.matrix[-1]) if r.matrix else "—"
        lines.append(f"| {c['name']} | {c['synapse']}{sp} | {c['plugin']} | {r.scenario_label} | {_fmt(m.get('acc'))} | "
                     f"{_fmt(m.get('bwt'))} | {_fmt(m.get('fwt'))} | {_fmt(m.get('forgetting'))} | "
                     f"{_fmt(m.get('intransigence'))} | {final} | {m.get('train_time_s', 0):.0f} |")
    return "\n".join(lines)


def _cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _n_jobs(jobs: int | None, n_runs: int) -> int:
    """Processes for ``n_runs`` learners: ``--jobs`` as given, else one per CPU core (at most ``n_runs``)."""
    return max(1, min(n_runs, jobs if jobs is not None else _cores()))


def _run_one(cfg: RunConfig, resume: bool, overwrite: bool, prefix: str = "  ", threads: int | None = None):
    """Train one learner of the command (in this process, or in a worker of :func:`_run_parallel`)."""
    from ..continual.runner import run_stream
    if threads is not None:
        import torch
        torch.set_num_threads(threads)
    print(f"== {cfg.name}: {cfg.stream}, {cfg.n_tasks} tasks, {cfg.scenario}, synapse={cfg.synapse} "
          f"{cfg.synapse_params or ''}, plugin={cfg.plugin}, out={cfg.out}", flush=True)
    res = run_stream(cfg, resume=resume, overwrite=overwrite, log=lambda s: print(prefix + s, flush=True))
    print(f"{prefix}ACC {100 * res.metrics['acc']:.1f}%  BWT {_fmt(res.metrics['bwt']).strip()}  "
          f"-> {Path(cfg.out) / 'results.json'}", flush=True)
    return res


def _run_parallel(configs: list[RunConfig], args: argparse.Namespace, jobs: int) -> list[Any]:
    """The learners in ``jobs`` worker processes (the CPU cores shared out as torch threads);
    their log lines carry the learner's name. Each run's numbers depend only on its config, as in a
    sequential run, up to the float rounding of the thread count."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    threads = max(1, _cores() // jobs)
    print(f"training {len(configs)} learners, {jobs} at a time ({threads} thread(s) each)", flush=True)
    # fork reuses this process's imports; it is safe for torch only with one thread per worker (the
    # forked OpenMP pool is never used), so more threads per worker start clean (spawned) workers
    method = "fork" if threads == 1 and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method)) as pool:
        # longest first (Monte-Carlo samples multiply a step's cost), so that the last to finish is short
        order = sorted(range(len(configs)), key=lambda i: -(configs[i].train_samples or 1))
        futures = {i: pool.submit(_run_one, configs[i].replace(progress=False), args.resume, args.overwrite,
                                  f"  [{configs[i].name}] ", threads) for i in order}
        try:
            return [futures[i].result() for i in range(len(configs))]
        except BaseException:
            for f in futures.values():
                f.cancel()
            raise


def main(args: argparse.Namespace) -> int:
    """Entry point of ``metaspin run``; returns the process exit status (2: bad input, one line)."""
    if args.jobs is not None and args.jobs < 1:
        print(f"metaspin run: --jobs must be >= 1, got {args.jobs}", file=sys.stderr)
        return 2
    try:
        configs = build_configs(args)
        check_out_dir(run_root(configs), resume=args.resume, overwrite=args.overwrite)
    except ValueError as e:
        if os.environ.get("METASPIN_TRACEBACK"):
            raise
        print(f"metaspin run: {e}", file=sys.stderr)
        return 2
    jobs = _n_jobs(args.jobs, len(configs))
    try:
        results = (_run_parallel(configs, args, jobs) if jobs > 1 else
                   [_run_one(cfg, args.resume, args.overwrite, prefix="  ") for cfg in configs])
    except ValueError as e:
        if os.environ.get("METASPIN_TRACEBACK"):
            raise
        print(f"metaspin run: {e}", file=sys.stderr)
        return 2
    table = summary_table(results)
    print("\n" + table)
    print("(ACC, BWT, FWT, forgetting, intransigence in percentage points; see each run's report.md)")
    if len(results) > 1:
        root = run_root(configs)
        atomic_write_bytes(root / "summary.md", (f"# {args.target}{' --quick' if args.quick else ''}\n\n"
                                                 + table + "\n").encode())
        from ..continual.report import plot_comparison
        plot_comparison(results, root / "summary.png", f"{args.target}{' --quick' if args.quick else ''}")
        print(f"summary: {root / 'summary.md'}, {root / 'summary.png'}")
    return 0
