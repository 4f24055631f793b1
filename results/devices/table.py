"""The device table of results/devices/README.md from the run folders (python results/devices/table.py)."""
import json
import statistics as st
from pathlib import Path

here = Path(__file__).parent
presets = ["generic-o", "ikeda2010-o", "hayakawa2008-h", "generic-n"]


def ms(v):
    return f"{st.mean(v):.1f} ± {st.stdev(v):.1f}" if len(v) > 1 else f"{v[0]:.1f}"


print("| preset | ACC after training | after 1 s idle | after 1 day | after 1 year | energy per training sample (pJ): write / read / gate | read energy per inference (pJ) | simulated training time (s) |")
print("|---|---|---|---|---|---|---|---|")
for p in presets:
    runs = sorted(here.glob(f"{p}-s[0-9]"))
    if not runs:
        continue
    acc = {k: [] for k in range(4)}
    ew, er, eg, inf, tt = [], [], [], [], []
    for r in runs:
        ret = json.loads((r / "retention.json").read_text())
        for k in range(4):
            acc[k].append(100 * ret["mean"][k])
        res = json.loads((r / "results.json").read_text())
        n = sum(t["steps"] for t in res["per_task"])
        samples = sum(t["energy_per_sample_J"] for t in res["per_task"]) / len(res["per_task"])
        e = {k: sum(t["energy_J"][k] for t in res["per_task"]) for k in ("write", "read", "gate")}
        tot = sum(e.values())
        ew.append(samples * e["write"] / tot * 1e12)
        er.append(samples * e["read"] / tot * 1e12)
        eg.append(samples * e["gate"] / tot * 1e12)
        inf.append(sum(t["inference_energy_J"]["read"] for t in res["per_task"]) / len(res["per_task"]) * 1e12)
        tt.append(sum(t["device"].get("time_s", 0.0) for t in res["per_task"]) / 3)  # 3 synapse layers
    print(f"| {p} | {ms(acc[0])} | {ms(acc[1])} | {ms(acc[2])} | {ms(acc[3])} | "
          f"{st.mean(ew):.3g} / {st.mean(er):.3g} / {st.mean(eg):.3g} | {st.mean(inf):.3g} | {st.mean(tt):.3g} |")
