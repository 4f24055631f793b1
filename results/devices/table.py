"""The device table of results/devices/README.md from the run folders (python results/devices/table.py).
Accuracies: mean over the 2 tasks of `metaspin retention` (t = 0 re-evaluates the trained network),
mean ± std over seeds 0-2; energies: mean over seeds of the per-task mean."""
import json
import statistics as st
from pathlib import Path

here = Path(__file__).parent
groups = {"generic-o": "generic-o-s", "ikeda2010-o": "ikeda2010-o-s", "hayakawa2008-h": "hayakawa2008-h-s",
          "generic-n": "generic-n-s", "generic-o, κ = 0 (no gating)": "generic-o-k0.0-s",
          "generic-o, κ = 0.1": "generic-o-k0.1-s"}
N_LAYERS = 3  # 784-256-256-10: the simulated time is summed over the three synapse arrays


def ms(v):
    return f"{st.mean(v):.1f} ± {st.stdev(v):.1f}" if len(v) > 1 else f"{v[0]:.1f}"


print("| preset | seeds | ACC just trained | after 1 s idle | after 1 day | after 1 year | BWT | "
      "energy per training sample (pJ): write / read / gate | read energy per inference (pJ) | "
      "simulated training time per task (s) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for label, prefix in groups.items():
    runs = sorted(here.glob(prefix + "[0-9]"))
    runs = [r for r in runs if (r / "retention.json").is_file()]
    if not runs:
        continue
    acc = {k: [] for k in range(4)}
    ew, er, eg, inf, tt, bwt = [], [], [], [], [], []
    for r in runs:
        ret = json.loads((r / "retention.json").read_text())
        for k in range(4):
            acc[k].append(100 * ret["mean"][k])
        res = json.loads((r / "results.json").read_text())
        pt = res["per_task"]
        bwt.append(100 * res["metrics"]["bwt"])
        ew.append(1e12 * st.mean(t["energy_J"]["write"] / (t["energy_J"]["write"] + t["energy_J"]["read"] + t["energy_J"]["gate"]) * t["energy_per_sample_J"] for t in pt))
        er.append(1e12 * st.mean(t["energy_J"]["read"] / (t["energy_J"]["write"] + t["energy_J"]["read"] + t["energy_J"]["gate"]) * t["energy_per_sample_J"] for t in pt))
        eg.append(1e12 * st.mean(t["energy_J"]["gate"] / (t["energy_J"]["write"] + t["energy_J"]["read"] + t["energy_J"]["gate"]) * t["energy_per_sample_J"] for t in pt))
        inf.append(1e12 * st.mean(t["inference_energy_J"]["read"] for t in pt))
        tt.append(st.mean(t["device"].get("time_s", 0.0) for t in pt) / N_LAYERS)
    print(f"| {label} | {len(runs)} | {ms(acc[0])} | {ms(acc[1])} | {ms(acc[2])} | {ms(acc[3])} | {ms(bwt)} | "
          f"{st.mean(ew):.3g} / {st.mean(er):.3g} / {st.mean(eg):.3g} | {st.mean(inf):.3g} | {st.mean(tt):.3g} |")

ref = sorted(here.glob("ref-metaplastic-s[0-9]"))
if ref:
    acc = [100 * json.loads((r / "results.json").read_text())["metrics"]["acc"] for r in ref]
    bwt = [100 * json.loads((r / "results.json").read_text())["metrics"]["bwt"] for r in ref]
    print(f"| reference: metaplastic binary (digital, m = 10, Adam ε = 2e-5) | {len(ref)} | {ms(acc)} | — | — | — | "
          f"{ms(bwt)} | — | — | — |")
