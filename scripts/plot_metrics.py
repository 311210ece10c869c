#!/usr/bin/env python3
"""Renders a moetrain metrics file (JSON lines) as PNGs. `moetrain plot` runs this script (it is
embedded in the binary); it also runs on its own:

    python3 scripts/plot_metrics.py METRICS.jsonl --out DIR [--run N]

Writes DIR/loss.png (train loss, val loss at each eval and at the end), DIR/lr.png,
DIR/grad_norm.png, DIR/tokens_per_s.png and DIR/expert_load.png (one heatmap per MoE layer:
expert x logged step, colour = the expert's share of the layer's routed tokens). Plots the last run
in the file (runs start at each "start" event) unless --run picks another (0 = the first, -1 = the
last). Exit codes: 0 ok, 2 bad input, 3 matplotlib missing.
"""
import argparse
import json
import os
import sys


def fail(msg, code=2):
    print(f"plot_metrics: {msg}", file=sys.stderr)
    sys.exit(code)


def read_runs(path):
    runs, current = [], None
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        fail(f"{path}: cannot open metrics file ({e.strerror})")
    with f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"{path}:{no}: not valid JSON ({e.msg})")
            if not isinstance(ev, dict):
                fail(f"{path}:{no}: not a JSON object")
            if ev.get("event") == "start" or current is None:
                current = []
                runs.append(current)
            current.append(ev)
    if not runs:
        fail(f"{path}: no events (empty metrics file)")
    return runs


def series(events, kind, key):
    pts = [(e["step"], e[key]) for e in events
           if e.get("event") == kind and key in e and "step" in e and e[key] is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def line_plot(plt, out, name, title, ylabel, curves, logy=False):
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    drawn = False
    for label, (xs, ys), style in curves:
        if xs:
            ax.plot(xs, ys, style, label=label)
            drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no data in this run", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if logy and drawn:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if drawn and len(curves) > 1:
        ax.legend()
    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path)
    plt.close(fig)
    return path


def expert_heatmap(plt, out, events, start):
    steps, loads = [], []
    for e in events:
        if e.get("event") == "step" and isinstance(e.get("expert_load"), list) and e["expert_load"]:
            steps.append(e["step"])
            loads.append(e["expert_load"])
    path = os.path.join(out, "expert_load.png")
    if not loads:
        fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
        ax.text(0.5, 0.5, "no expert_load in this run", ha="center", va="center")
        ax.axis("off")
        fig.savefig(path)
        plt.close(fig)
        return path
    layers = len(loads[0])
    experts = len(loads[0][0])
    moe_layers = start.get("moe_layers") if start else None
    if not isinstance(moe_layers, list) or len(moe_layers) != layers:
        moe_layers = list(range(layers))
    cols = min(4, layers)
    rows = (layers + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols + 1, 3 * rows + 0.6), dpi=100, squeeze=False,
                             constrained_layout=True)
    image = None
    for i in range(rows * cols):
        ax = axes[i // cols][i % cols]
        if i >= layers:
            ax.axis("off")
            continue
        # grid[expert][t]: share of the layer's routed tokens at logged step t.
        grid = []
        for ex in range(experts):
            row = []
            for load in loads:
                tot = sum(load[i]) if len(load) > i else 0
                row.append(load[i][ex] / tot if tot > 0 and ex < len(load[i]) else 0.0)
            grid.append(row)
        # Logged steps are unevenly spaced (step 1, then every N): cell edges halfway between.
        mids = [(a + b) / 2 for a, b in zip(steps, steps[1:])]
        x_edges = [steps[0] - 0.5] + mids + [steps[-1] + 0.5]
        y_edges = [ex - 0.5 for ex in range(experts + 1)]
        image = ax.pcolormesh(x_edges, y_edges, grid, cmap="viridis", vmin=0.0, shading="flat")
        ax.set_title(f"layer {moe_layers[i]}")
        ax.set_xlabel("step")
        ax.set_ylabel("expert")
    fig.suptitle("expert load (share of the layer's tokens; uniform = %.3f)" % (1.0 / experts))
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
    fig.savefig(path)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser(description="plot a moetrain metrics file")
    ap.add_argument("metrics")
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--run", type=int, default=-1, help="which run in the file (default -1: the last)")
    args = ap.parse_args()
    runs = read_runs(args.metrics)
    try:
        events = runs[args.run]
    except IndexError:
        fail(f"{args.metrics}: --run {args.run} out of range (the file holds {len(runs)} runs)")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail(f"matplotlib is not installed for {sys.executable}: pip install matplotlib "
             "(or on Debian: apt-get install python3-matplotlib; scripts/install-deps.sh does)", 3)
    os.makedirs(args.out, exist_ok=True)
    start = events[0] if events and events[0].get("event") == "start" else None
    written = [
        line_plot(plt, args.out, "loss.png", "loss", "cross-entropy (nats)",
                  [("train", series(events, "step", "loss"), "-"),
                   ("val", series(events, "eval", "val_loss"), "o-"),
                   ("val (final)", series(events, "final", "val_loss"), "s")]),
        line_plot(plt, args.out, "lr.png", "learning rate", "lr", [("lr", series(events, "step", "lr"), "-")]),
        line_plot(plt, args.out, "grad_norm.png", "gradient norm (before clipping)", "L2 norm",
                  [("grad norm", series(events, "step", "grad_norm"), "-")], logy=True),
        line_plot(plt, args.out, "tokens_per_s.png", "throughput", "tokens / s (global)",
                  [("tokens/s", series(events, "step", "tokens_per_s"), "-")]),
        expert_heatmap(plt, args.out, events, start),
    ]
    for p in written:
        print(p)


if __name__ == "__main__":
    main()
