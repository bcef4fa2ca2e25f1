#!/usr/bin/env python3
"""Writes the planning-at-scale plot as a hand-made SVG (no plotting library needed).

    bench/plot.py RESULTS.jsonl OUT.svg

RESULTS.jsonl holds one JSON object per size (the output of
`cargo bench -p infra-core --bench plan -- --json ...`, plus an optional "series" key). Plots,
on log-log axes, the medians of the no-op plan, the plan from scratch and validate+graph
against the number of resources, with an n·log n reference through the 1,000-resource no-op
point (a series growing no faster than n·log n stays parallel to or below it).
"""

import json
import math
import sys

W, H = 760, 470
ML, MR, MT, MB = 78, 200, 40, 58  # margins: left, right (legend), top, bottom
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def decades(lo, hi):
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    return [10.0 ** k for k in range(a, b + 1)]


def fmt(v):
    if v >= 1000:
        return f"{v / 1000:g}k" if v < 1e6 else f"{v / 1e6:g}M"
    return f"{v:g}"


def main():
    rows = sorted(load(sys.argv[1]), key=lambda r: r["resources"])
    out = sys.argv[2]
    if not rows:
        sys.exit("plot.py: no rows")
    series = [
        ("no-op plan: open + graph + read + plan + render", "total_noop_ms"),
        ("plan from scratch + render", "total_scratch_ms"),
        ("validate + graph (Graph::build)", "graph_ms"),
        ("plan::compute (diff) alone", "compute_ms"),
    ]
    series = [(label, key) for label, key in series if all(key in r for r in rows)]
    ns = [r["resources"] for r in rows]
    # n log n through the no-op point nearest 1,000 resources
    anchor = min(rows, key=lambda r: abs(math.log(r["resources"] / 1000)))
    c = anchor["total_noop_ms"] / (anchor["resources"] * math.log(anchor["resources"]))
    ref = [c * n * math.log(n) for n in ns]
    lin = [anchor["total_noop_ms"] * n / anchor["resources"] for n in ns]
    values = [r[k] for r in rows for _, k in series] + ref
    xlo, xhi = min(ns) / 1.5, max(ns) * 1.5
    ylo, yhi = max(min(values) / 2, 1e-3), max(values) * 2
    xs, ys = decades(xlo, xhi), decades(ylo, yhi)
    xlo, xhi, ylo, yhi = xs[0], xs[-1], ys[0], ys[-1]

    def X(v):
        return ML + (math.log10(v) - math.log10(xlo)) / (math.log10(xhi) - math.log10(xlo)) * (W - ML - MR)

    def Y(v):
        return H - MB - (math.log10(v) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo)) * (H - MT - MB)

    o = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{ML}" y="22" font-size="14" font-weight="bold">Planning at scale (sandbox): median time vs resources, log-log</text>',
    ]
    for v in xs:
        o.append(f'<line x1="{X(v):.1f}" y1="{MT}" x2="{X(v):.1f}" y2="{H - MB}" stroke="#ddd"/>')
        o.append(f'<text x="{X(v):.1f}" y="{H - MB + 16}" text-anchor="middle">{fmt(v)}</text>')
    for v in ys:
        o.append(f'<line x1="{ML}" y1="{Y(v):.1f}" x2="{W - MR}" y2="{Y(v):.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{ML - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{fmt(v)}</text>')
    o.append(f'<rect x="{ML}" y="{MT}" width="{W - ML - MR}" height="{H - MT - MB}" fill="none" stroke="#333"/>')
    o.append(f'<text x="{(ML + W - MR) / 2}" y="{H - 16}" text-anchor="middle">resources (n)</text>')
    o.append(f'<text transform="translate(18,{(MT + H - MB) / 2}) rotate(-90)" text-anchor="middle">milliseconds</text>')
    # the 0.5 s target at 10,000
    if xlo <= 10000 <= xhi and ylo <= 500 <= yhi:
        o.append(f'<circle cx="{X(10000):.1f}" cy="{Y(500):.1f}" r="5" fill="none" stroke="#000" stroke-width="1.5"/>')
        o.append(f'<text x="{X(10000) + 8:.1f}" y="{Y(500) - 6:.1f}">target: 10k in 0.5 s</text>')

    def polyline(pts, color, dash=None, width=2):
        d = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in pts)
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        return f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="{width}"{extra}/>'

    legend = []
    o.append(polyline(list(zip(ns, ref)), "#000", "6,4", 1.5))
    legend.append(("n·log n reference (through the 1k no-op point)", "#000", "6,4"))
    o.append(polyline(list(zip(ns, lin)), "#999", "2,3", 1.2))
    legend.append(("linear reference", "#999", "2,3"))
    for i, (label, key) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        pts = [(r["resources"], r[key]) for r in rows]
        o.append(polyline(pts, color))
        for x, y in pts:
            o.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" fill="{color}"/>')
        legend.append((label, color, None))
    ly = MT + 6
    for label, color, dash in legend:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        o.append(f'<line x1="{W - MR + 10}" y1="{ly}" x2="{W - MR + 34}" y2="{ly}" stroke="{color}" stroke-width="2"{extra}/>')
        # wrap long labels over two lines
        words, lines, cur = label.split(), [], ""
        for w in words:
            if len(cur) + len(w) + 1 > 26 and cur:
                lines.append(cur)
                cur = w
            else:
                cur = f"{cur} {w}".strip()
        lines.append(cur)
        for j, t in enumerate(lines):
            o.append(f'<text x="{W - MR + 40}" y="{ly + 4 + 14 * j}" font-size="11">{t}</text>')
        ly += 14 * len(lines) + 10
    o.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(o) + "\n")


if __name__ == "__main__":
    main()
