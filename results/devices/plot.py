"""Energy per training sample vs accuracy after training, for every MTJ preset and the κ sweep of
generic-o (mean of seeds 0-2; bars: std). python results/devices/plot.py -> energy_vs_accuracy.png"""
import json
import statistics as st
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

here = Path(__file__).parent
groups = {"generic-o (κ 0.02)": "generic-o-s", "ikeda2010-o": "ikeda2010-o-s", "hayakawa2008-h": "hayakawa2008-h-s",
          "generic-n": "generic-n-s", "generic-o κ = 0": "generic-o-k0.0-s", "generic-o κ = 0.1": "generic-o-k0.1-s"}
fig = Figure(figsize=(6.4, 4.0))
FigureCanvasAgg(fig)
ax = fig.add_subplot(111)
for label, prefix in groups.items():
    runs = sorted(here.glob(prefix + "[0-9]"))
    if not runs:
        continue
    acc, en, acc1d = [], [], []
    for r in runs:
        ret = json.loads((r / "retention.json").read_text())
        res = json.loads((r / "results.json").read_text())
        acc.append(100 * ret["mean"][0])
        acc1d.append(100 * ret["mean"][2])
        en.append(1e12 * sum(t["energy_per_sample_J"] for t in res["per_task"]) / len(res["per_task"]))
    e, a = st.mean(en), st.mean(acc)
    ax.errorbar([e], [a], yerr=[st.stdev(acc) if len(acc) > 1 else 0], fmt="o", capsize=3, label=label)
    ax.plot([e], [st.mean(acc1d)], marker="x", color="grey")
ax.set_xscale("log")
ax.set_xlabel("energy per training sample (pJ): write + read + gate")
ax.set_ylabel("mean test accuracy, 2 tasks (%)")
ax.set_title("MTJ presets: permuted MNIST --quick --tasks 2 (o: just trained, x: after 1 day idle)", fontsize=8)
ax.grid(alpha=0.3)
ax.legend(fontsize=7)
fig.savefig(here / "energy_vs_accuracy.png", dpi=110, bbox_inches="tight")
print(here / "energy_vs_accuracy.png")
