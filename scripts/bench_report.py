"""The table of `make bench`: reads the events files bench_run.py wrote for
each contender and prints images/s, CPU per image, peak RSS, the ratios to
each xcept contender's Keras baseline, and whether the targets are met.

    bench_report.py --dir RUNS [--setting KEY=VALUE ...] [--prepare FILE]

RUNS holds CONTENDER.jsonl for every contender in CONTENDERS. Throughput is
over the steady epochs: every epoch but the first, whose time includes
warm-up (graph building and tracing) on both sides.
"""

import argparse
import dataclasses
import json
import os
import sys

# Kept in step with the labels bench.sh runs. baseline: the Keras contender
# an xcept one is measured against; speedup: the target ratio of images/s.
CONTENDERS = [
    dict(key="keras-idg", name="Keras frozen, ImageDataGenerator"),
    dict(key="keras-tfdata", name="Keras frozen, tf.data"),
    dict(key="keras-finetune", name="Keras finetune, tf.data"),
    dict(key="xcept-cached", name="xcept train, feature cache", baseline="keras-idg", speedup=10.0),
    dict(key="xcept-uncached", name="xcept train, no cache", baseline="keras-tfdata", speedup=1.0),
    dict(key="xcept-finetune", name="xcept finetune", baseline="keras-finetune", speedup=1.0),
]
CACHE_NOTE = "computing the frozen base's features"  # xcept's notice as the cache build starts
LONG_RUN = 50  # epochs, for the wall-time comparison of the cached phase


class ReportError(Exception):
    pass


@dataclasses.dataclass
class Epoch:
    t: float  # wall seconds since the process started, when its line came
    cpu: float  # process CPU seconds by then
    seconds: float
    images: float


@dataclasses.dataclass
class Run:
    epochs: list
    wall: float
    maxrss_mb: float
    cache_build: float = None  # seconds; None when no cache was built

    @property
    def steady(self):
        return self.epochs[1:]

    @property
    def images_per_second(self):
        return sum(e.images for e in self.steady) / sum(e.seconds for e in self.steady)

    @property
    def cpu_ms_per_image(self):
        """Process CPU between the first and the last epoch line, per image
        of the epochs in between (validation and checkpoints included)."""
        cpu = self.epochs[-1].cpu - self.epochs[0].cpu
        return 1000 * cpu / sum(e.images for e in self.steady)

    @property
    def epoch_seconds(self):
        return sum(e.seconds for e in self.steady) / len(self.steady)


def read_run(path):
    epochs, summary, cache_start = [], None, None
    with open(path) as f:
        for raw in f:
            ev = json.loads(raw)
            if "exit" in ev:
                summary = ev
                continue
            if ev["fd"] == "err" and CACHE_NOTE in ev["line"] and cache_start is None:
                cache_start = ev["t"]
            if ev["fd"] != "out" or not ev["line"].startswith("{"):
                continue
            line = json.loads(ev["line"])
            if "images_per_second" in line and "seconds" in line:
                epochs.append(Epoch(ev["t"], ev["cpu"], line["seconds"], line["images_per_second"] * line["seconds"]))
    name = os.path.basename(path)
    if summary is None:
        raise ReportError(f"{name}: no summary line; the run did not finish")
    if summary["exit"] != 0:
        raise ReportError(f"{name}: the run exited with {summary['exit']}")
    if len(epochs) < 2:
        raise ReportError(f"{name}: {len(epochs)} epoch line(s); steady throughput needs at least 2 epochs")
    run = Run(epochs, summary["wall"], summary["maxrss_kb"] / 1024)
    if cache_start is not None:
        # From the notice to the end of the first epoch, less that epoch.
        run.cache_build = epochs[0].t - epochs[0].seconds - cache_start
    return run


def fmt_rate(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def table(runs):
    rows = [("contender", "images/s", "speed vs baseline", "CPU ms/img", "peak RSS", "RSS vs baseline", "epoch 1", "target met")]
    verdicts = []
    for c in CONTENDERS:
        r = runs[c["key"]]
        rate, cpu, rss, first = fmt_rate(r.images_per_second), f"{r.cpu_ms_per_image:.0f}", f"{r.maxrss_mb:,.0f} MB", f"{r.epochs[0].seconds:.1f} s"
        base = c.get("baseline")
        if base is None:
            rows.append((c["name"], rate, "(baseline)", cpu, rss, "", first, ""))
            continue
        b = runs[base]
        speed = r.images_per_second / b.images_per_second
        rss_ratio = r.maxrss_mb / b.maxrss_mb
        ok_speed, ok_rss = speed >= c["speedup"], rss_ratio <= 1.0
        verdict = f"{'yes' if ok_speed and ok_rss else 'NO'} (≥{c['speedup']:g}×: {'yes' if ok_speed else 'no'}, RSS: {'yes' if ok_rss else 'no'})"
        rows.append((c["name"], rate, f"{speed:.2f}× {base}", cpu, rss, f"{rss_ratio:.2f}×", first, verdict))
        verdicts.append(ok_speed and ok_rss)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {1, 3, 4, 5, 6}
    lines = []
    for i, r in enumerate(rows):
        cells = [cell.rjust(w) if j in right else cell.ljust(w) for j, (cell, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines), all(verdicts)


def cache_summary(runs):
    cached, idg = runs["xcept-cached"], runs["keras-idg"]
    if cached.cache_build is None:
        return "feature cache: not built in this run (it already existed), so its build time is unknown"
    xcept_long = cached.cache_build + LONG_RUN * cached.epoch_seconds
    keras_long = LONG_RUN * idg.epoch_seconds
    return (
        f"feature cache: built once in {cached.cache_build:.1f} s; then {cached.epoch_seconds:.2f} s per epoch.\n"
        f"{LONG_RUN} frozen epochs: xcept {xcept_long:.0f} s (cache build included) vs Keras ImageDataGenerator "
        f"{keras_long:.0f} s: {keras_long / xcept_long:.1f}× less wall time."
    )


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", required=True)
    p.add_argument("--setting", action="append", default=[], help="KEY=VALUE printed above the table")
    p.add_argument("--prepare", help="output of bench_prepare.sh, printed as the first section")
    args = p.parse_args(argv)
    try:
        runs = {c["key"]: read_run(os.path.join(args.dir, c["key"] + ".jsonl")) for c in CONTENDERS}
    except (ReportError, OSError) as e:
        print(f"bench_report: {e}", file=sys.stderr)
        return 1
    out = []
    if args.prepare:
        with open(args.prepare) as f:
            out += ["xcept prepare (issue 3): 640×480 JPEGs, 4 classes, --no-model", f.read().rstrip(), ""]
    out.append("training (issue 4)")
    for kv in args.setting:
        key, _, value = kv.partition("=")
        out.append(f"  {key}: {value}")
    text, met = table(runs)
    out += ["", text, "", cache_summary(runs)]
    walls = ", ".join(f"{c['key']} {runs[c['key']].wall:.0f} s" for c in CONTENDERS)
    out.append(f"process wall time (start-up, model loading and checkpoints included): {walls}")
    out.append(
        "images/s: training images over the wall time of the steady epochs (all but the first), validation included, "
        "checkpoint writes excluded; CPU ms/img: process CPU over the same epochs (and their checkpoints), which a busy machine skews less; "
        "epoch 1: the first epoch's seconds (warm-up: graph optimisation, tracing), left out of images/s."
    )
    out.append("all targets met" if met else "TARGETS MISSED: see the rows marked NO")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
