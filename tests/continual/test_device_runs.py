"""Device physics through the pipeline: energy_J per task in results.json, idle time between tasks,
``metaspin retention`` (retention.json, seeded), ``metaspin devices``, the docs' preset tables, and
the magneto-ionic pair's energy and time."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from metaspin_snn.cli import main as cli_main
from metaspin_snn.continual.config import RunConfig
from metaspin_snn.continual.runner import run_stream

TINY = dict(stream="pmnist", n_tasks=2, train_subset=100, test_subset=100, hidden=(16,), num_steps=2,
            batch_size=50, progress=False, synapse="mtj")


@pytest.fixture(scope="module")
def mtj_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mtj") / "run"
    res = run_stream(RunConfig(**TINY, out=str(out)))
    return out, res


def test_results_hold_energy_per_task_in_joules(mtj_run):
    out, res = mtj_run
    r = json.loads((out / "results.json").read_text())
    for t in r["per_task"]:
        e = t["energy_J"]
        assert set(e) == {"write", "read", "gate"}
        assert e["write"] > 0 and e["read"] > 0 and e["gate"] > 0          # the done-when of issue 15
        assert t["inference_energy_J"]["read"] > 0
        # per training sample: the task's energy over its samples × epochs
        assert t["energy_per_sample_J"] == pytest.approx(sum(e.values()) / 100, rel=1e-9)
        assert t["device"]["time_s"] > 0                                       # simulated time advanced
    # one inference costs about the same on each task (same network, same inputs' statistics): the
    # evaluation of the other tasks is not charged to this one
    inf = [t["inference_energy_J"]["read"] for t in r["per_task"]]
    assert 0.7 < inf[1] / inf[0] < 1.4, inf
    assert "| task | write J | read J | gate J |" in (out / "report.md").read_text()


def test_read_energy_of_an_inference_is_the_closed_form():
    """One inference through a 1-layer MTJ network: Σ_n Σ_i u² V_r² t_r Σ_j G_ji + E_sense·out·N."""
    from metaspin_snn.networks.layers import SynapticLinear
    from metaspin_snn.synapses.registry import synapse_factory
    lay = SynapticLinear(5, 3, synapse=synapse_factory("mtj", seed=1))
    lay.eval()
    u = torch.tensor([[1.0, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0.5, 0, 0, 0, 0]])
    syn = lay.synapse
    p = syn.params
    e0 = syn.energy_j()["read"]
    lay(u)
    tmr = p.tmr / (1 + (p.v_read / p.v_half) ** 2)
    G = torch.where(syn.s > 0, 1 / p.r_p_ohm, 1 / (p.r_p_ohm * (1 + tmr))).double()
    want = p.v_read ** 2 * p.t_read_ns * 1e-9 * float(((u.double() ** 2).sum(0) * G.sum(0)).sum())
    want += p.e_sense_pj * 1e-12 * 3 * 3
    assert syn.energy_j()["read"] - e0 == pytest.approx(want, rel=1e-9)


def test_idle_time_between_tasks_ages_the_devices(tmp_path):
    """idle_s: thermal flips happen between tasks (a 30 kT device lives ~3 h, so 10 days flip about half
    of the unconsolidated ones; consolidated ones stay); recorded as the task's "idle" entry."""
    base = run_stream(RunConfig(**TINY, out=str(tmp_path / "a")))
    aged = run_stream(RunConfig(**TINY, idle_s=10 * 86400.0, out=str(tmp_path / "b")))
    r_a = json.loads((tmp_path / "a" / "results.json").read_text())
    r_b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert r_b["matrix"][0] == r_a["matrix"][0] and "idle" not in r_b["per_task"][0]  # task 0 unchanged
    idle = r_b["per_task"][1]["idle"]
    n_syn = 784 * 16 + 16 * 10
    assert idle["seconds"] == 10 * 86400.0 and idle["device"]["time_s"] == pytest.approx(2 * 10 * 86400.0)  # Σ over the 2 layers
    assert 0.05 * n_syn < idle["device"]["switches"] < 0.6 * n_syn      # many, not all, devices flipped
    assert "idle" not in r_a["per_task"][1]
    with pytest.raises(ValueError, match="idle_s"):
        RunConfig(**TINY, idle_s=-1.0)
    assert base.matrix[0] == aged.matrix[0]


def test_retention_cli_writes_accuracy_per_task_per_time(mtj_run, tmp_path, capsys):
    out, res = mtj_run
    run = tmp_path / "copy"
    import shutil
    shutil.copytree(out, run)
    assert cli_main(["retention", str(run), "--times", "1s,1d,1y"]) == 0
    r = json.loads((run / "retention.json").read_text())
    assert r["labels"] == ["0", "1s", "1d", "1y"]
    assert r["times_s"] == [0.0, 1.0, 86400.0, 365.25 * 86400.0]
    assert len(r["accuracy"]) == 4 and all(len(a) == 2 for a in r["accuracy"])
    assert r["accuracy"][0] == pytest.approx(res.matrix[-1], abs=0.1)  # t = 0: the trained network (fresh read noise)
    assert r["switches"][1] <= r["switches"][2] <= r["switches"][3] and r["switches"][3] > 0
    assert (run / "retention.png").stat().st_size > 1000
    # seeded: the same checkpoint gives the same numbers
    first = (run / "retention.json").read_bytes()
    assert cli_main(["retention", str(run), "--times", "1s,1d,1y"]) == 0
    assert (run / "retention.json").read_bytes() == first
    # bad input: one line, exit 2, nothing written
    (run / "retention.json").unlink()
    assert cli_main(["retention", str(run), "--times", "1d,1s"]) == 2
    assert cli_main(["retention", str(run), "--times", "soon"]) == 2
    assert cli_main(["retention", str(tmp_path / "nope")]) == 2
    assert not (run / "retention.json").exists()
    err = capsys.readouterr().err
    assert "increasing" in err and "duration 'soon'" in err and "checkpoint.pt" in err


def test_retention_refuses_a_run_without_devices(tmp_path, capsys):
    out = tmp_path / "real"
    run_stream(RunConfig(**{**TINY, "synapse": "real"}, out=str(out)))
    assert cli_main(["retention", str(out), "--times", "1s"]) == 2
    assert "ages" in capsys.readouterr().err


def test_devices_cli_lists_presets_with_sources(capsys):
    assert cli_main(["devices"]) == 0
    out = capsys.readouterr().out
    from metaspin_snn.synapses.devices import PRESETS
    for name, p in PRESETS.items():
        assert name in out
        for ref in p.references:
            assert ref in out
    assert "Ikeda" in out and "assumption" in out
    assert cli_main(["devices", "ikeda2010-o", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    d = rows[0]["derived"]
    # derived quantities are the closed forms: τ₀e^Δ at x = 0 with Δ = 40
    assert d["retention_s_x0"] == pytest.approx(1e-9 * math.exp(40.0), rel=1e-9)
    assert d["write_energy_pj_vmax_P"] == pytest.approx(0.36 ** 2 / 8000 * 10e-9 * 1e12, rel=1e-9)
    assert cli_main(["devices", "nope"]) == 2


def test_docs_preset_tables_are_the_generated_ones():
    from pathlib import Path

    from metaspin_snn.cli.devices import markdown
    from metaspin_snn.synapses.devices import presets_for
    root = Path(__file__).resolve().parents[2] / "docs"
    for family, page in (("mtj", "devices-mtj.md"), ("magnetoionic", "devices-magnetoionic.md")):
        text = (root / page).read_text()
        assert markdown(list(presets_for(family))).strip() in text, f"docs/{page}: regenerate with " \
            f"`metaspin devices --family {family} --markdown`"


def test_every_preset_builds_and_names_its_sources():
    from metaspin_snn.synapses.devices import PRESETS
    from metaspin_snn.synapses.registry import layer_synapse_factories
    for name, p in PRESETS.items():
        (f,) = layer_synapse_factories(p.family, 1, preset=name)
        for k, v in p.values.items():
            assert getattr(f.params, k) == v
        assert f.params.preset == name
        assert set(p.values) <= set(p.sources), f"{name}: every preset value needs a source or 'assumption'"


def test_magnetoionic_pair_energy_and_time():
    """Gate energy C·V_g² per applied pulse (fractional pulses pulse-width modulated), time = the largest
    pulse amount × t_gate; with c2c and finite levels off the update is the authors' rule bit for bit."""
    from metaspin_snn.synapses.magnetoionic import MagnetoIonicPair, MagnetoIonicParams
    p = MagnetoIonicParams(lr=10.0, device_variability=0.0, read_noise=0.0, seed=2)
    m = MagnetoIonicPair((3, 4), p)
    ref = MagnetoIonicPair((3, 4), p)
    g = torch.linspace(-0.1, 0.1, 12).reshape(3, 4)
    m.update(g)
    amounts = (g.abs() * 10.0).double()
    assert m.energy_j()["gate"] == pytest.approx(float(amounts.sum()) * p.gate_cap_f * p.gate_v ** 2, rel=1e-6)
    assert float(m.time_s) == pytest.approx(float(amounts.max()) * p.t_gate_s, rel=1e-6)
    from metaspin_snn.synapses.magnetoionic import mi_step_torch
    mi_step_torch(g, ref.x1, ref.x2, ref.nu1, ref.nu2, ref.n_pulse, ref.n_refresh, 10.0, 0.0, p.x_max,
                  p.kind(), *p.coeffs())
    assert torch.equal(m.x1, ref.x1) and torch.equal(m.x2, ref.x2)
    # finite levels: whole pulses only
    q = MagnetoIonicPair((3, 4), MagnetoIonicParams(lr=10.0, device_variability=0.0, read_noise=0.0,
                                                      pulse_quantum=1.0, init_mode="least_range", init_range=0.0))
    x0 = q.x1.clone() + q.x2.clone()
    q.update(g)
    moved = (q.x1 + q.x2 - x0).double()
    assert torch.allclose(moved, moved.round(), atol=1e-4)
    assert not torch.equal(moved, (g.abs() * 10.0).double())
    # switches off: d2d gives ν = 1, read_noise off gives the noise-free weight even with read_noise > 0
    z = MagnetoIonicPair((3, 4), MagnetoIonicParams(nonideal={"d2d": False, "read_noise": False}))
    assert torch.equal(z.nu1, torch.ones(3, 4)) and z.backward_read() is None


def test_readme_first_commands_and_cli_help_list_the_new_commands():
    out = subprocess.run([sys.executable, "-m", "metaspin_snn.cli", "--help"], capture_output=True, text=True).stdout
    assert "devices" in out and "retention" in out


def test_export_reads_the_programmed_states_without_read_noise():
    """A trained MTJ layer exports gain·scale·s exactly, although every evaluation read is noisy."""
    from metaspin_snn.networks.layers import SynapticLinear
    from metaspin_snn.synapses.registry import synapse_factory
    lay = SynapticLinear(20, 7, synapse=synapse_factory("mtj", seed=4, read_noise=0.05))
    lay.eval()
    w = lay.effective_weight()
    assert torch.equal(w, lay.synapse.s.float() * lay.gain)
    y1, y2 = lay(torch.ones(1, 20)), lay(torch.ones(1, 20))
    assert not torch.equal(y1, y2)                       # evaluation reads are noisy (fresh per forward)
    assert torch.equal(lay.effective_weight(), w)        # the export weight is not
