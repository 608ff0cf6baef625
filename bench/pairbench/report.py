"""Collected samples and the side-by-side table (pairtund vs OpenSSH, ratio of medians)."""
from dataclasses import dataclass, field

from .procs import summary


@dataclass
class Metric:
    name: str
    unit: str
    better: str  # "higher", "lower", or "zero" (pairtund must be 0)
    baseline: str  # what the OpenSSH column ran
    target: str = ""
    samples: dict = field(default_factory=lambda: {"openssh": [], "pairtund": []})


class Results:
    def __init__(self):
        self.metrics = {}

    def metric(self, name, unit, better, baseline, target=""):
        if name not in self.metrics:
            self.metrics[name] = Metric(name, unit, better, baseline, target)
        return self.metrics[name]

    def add(self, name, side, value):
        self.metrics[name].samples[side].append(value)

    def rows(self):
        for m in self.metrics.values():
            o, p = summary(m.samples["openssh"]), summary(m.samples["pairtund"])
            ratio = p["median"] / o["median"] if o and p and o["median"] else None
            yield m, o, p, ratio

    def as_json(self):
        return {name: {"unit": m.unit, "better": m.better, "baseline": m.baseline,
                       "target": m.target, "samples": m.samples}
                for name, m in self.metrics.items()}


def fmt(x):
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def cell(s):
    if not s:
        return "-"
    if s["n"] == 1 or s["min"] == s["max"]:
        return f"{fmt(s['median'])} (n={s['n']})"
    return f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])}, n={s['n']})"


def verdict(m, p, ratio):
    if m.better == "zero":
        return "yes" if p and p["max"] == 0 else ("no" if p else "-")
    if ratio is None or not m.target:
        return ""
    limit = float(m.target.split()[-1].rstrip("x"))
    ok = ratio >= limit if m.better == "higher" else ratio <= limit
    if m.target.startswith("<") and not m.target.startswith("<="):
        ok = ratio < limit
    return "yes" if ok else "**no**"


def per_run(m):
    """The machine's noise, seen where it matters: run i of each tool ran back to back, so
    their ratio is the comparison within one stretch of the machine's weather. The range of
    those ratios, and in how many runs pairtund came out ahead (a tie is not ahead)."""
    o, p = m.samples["openssh"], m.samples["pairtund"]
    if m.better == "zero" or len(o) != len(p) or len(o) < 2:
        return "-"
    if not all(o) or any(x is None for x in p):
        return "-"
    ratios = [b / a for a, b in zip(o, p)]
    ahead = sum(r > 1 if m.better == "higher" else r < 1 for r in ratios)
    return f"{fmt(min(ratios))}-{fmt(max(ratios))}x ({ahead}/{len(ratios)})"


def markdown(results):
    out = ["| measurement | OpenSSH side | OpenSSH | pairtund | pairtund / OpenSSH | "
           "per run (pairtund ahead) | target | met |",
           "|---|---|---|---|---|---|---|---|"]
    for m, o, p, ratio in results.rows():
        out.append(f"| {m.name} [{m.unit}, {m.better} is better] | {m.baseline} | {cell(o)} | "
                   f"{cell(p)} | {fmt(ratio) + 'x' if ratio is not None else '-'} | "
                   f"{per_run(m)} | {m.target} | {verdict(m, p, ratio)} |")
    return "\n".join(out)
