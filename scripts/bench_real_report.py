"""The table of `make bench-real` (scripts/bench_real.sh), from the events
bench_run.py recorded for each contender in WORK/DATASET/runs/.

    bench_real_report.py --work DIR --datasets "fashion digits" [--setting K=V ...]

Contenders found per dataset:
  classical.jsonl                     one process; its test_accuracy line
  keras-recipe.jsonl                  one process (frozen, then fine-tuned); its test_accuracy line
  NAME-train.jsonl [+ NAME-finetune.jsonl] + NAME-eval.jsonl
                                      xcept: training CPU and wall are train + finetune,
                                      peak RSS the larger, test accuracy from evaluate --json
  NAME-frozen-eval.jsonl              also a row "NAME, frozen only": train's CPU and wall,
                                      test accuracy of the frozen phase's best checkpoint
CPU-s is user + system of the process and its children (wait4), wall-s the
process's own wall time; both cover training only, not the test evaluation.
The "vs keras" column is the contender's CPU-s over keras-recipe's.
"""

import argparse
import json
import os
import sys


def events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def summary(evs, path):
    last = evs[-1] if evs else {}
    if "exit" not in last:
        raise SystemExit(f"{path}: no summary line (the run did not finish): rerun make bench-real")
    if last["exit"] != 0:
        raise SystemExit(f"{path}: the contender exited with {last['exit']}: rerun make bench-real")
    return last


def stdout_json(evs):
    for e in evs:
        if e.get("fd") == "out":
            try:
                yield json.loads(e["line"])
            except (ValueError, KeyError):
                continue


def find_accuracy(obj):
    """The first 'accuracy' value in evaluate's JSON result (nested anywhere)."""
    if isinstance(obj, dict):
        if isinstance(obj.get("accuracy"), (int, float)):
            return float(obj["accuracy"])
        for v in obj.values():
            got = find_accuracy(v)
            if got is not None:
                return got
    return None


def one_process(path):
    evs = events(path)
    s = summary(evs, path)
    acc = next((o["test_accuracy"] for o in stdout_json(evs) if "test_accuracy" in o), None)
    epochs = sum(1 for o in stdout_json(evs) if "epoch" in o)
    return dict(acc=acc, cpu=s["user"] + s["sys"], wall=s["wall"], rss=s["maxrss_kb"] / 1024, epochs=epochs)


def xcept(runs, name, phases=("train", "finetune"), evaluation="eval"):
    cpu = wall = rss = 0.0
    epochs = []
    for phase in phases:
        path = os.path.join(runs, f"{name}-{phase}.jsonl")
        if not os.path.exists(path):
            continue
        evs = events(path)
        s = summary(evs, path)
        cpu += s["user"] + s["sys"]
        wall += s["wall"]
        rss = max(rss, s["maxrss_kb"] / 1024)
        epochs.append(sum(1 for o in stdout_json(evs) if "phase_epoch" in o))
    path = os.path.join(runs, f"{name}-{evaluation}.jsonl")
    acc = None
    if os.path.exists(path):
        evs = events(path)
        summary(evs, path)
        for o in stdout_json(evs):
            acc = find_accuracy(o)
            if acc is not None:
                break
    return dict(acc=acc, cpu=cpu, wall=wall, rss=rss, epochs="+".join(map(str, epochs)))


def rows(runs):
    out = []
    if os.path.exists(os.path.join(runs, "classical.jsonl")):
        out.append(("classical (SVC, raw pixels)", one_process(os.path.join(runs, "classical.jsonl"))))
    names = sorted(f[: -len("-train.jsonl")] for f in os.listdir(runs) if f.endswith("-train.jsonl"))
    for name in names:
        if os.path.exists(os.path.join(runs, f"{name}-frozen-eval.jsonl")):
            out.append((f"{name}, frozen only", xcept(runs, name, ("train",), "frozen-eval")))
        out.append((name, xcept(runs, name)))
    if os.path.exists(os.path.join(runs, "keras-recipe.jsonl")):
        out.append(("keras-recipe", one_process(os.path.join(runs, "keras-recipe.jsonl"))))
    return out


def fmt_acc(a):
    return "—" if a is None else f"{a:.3f}"


def table(work, datasets):
    lines = []
    head = f"{'dataset':<8} {'contender':<28} {'test acc':>8} {'epochs':>7} {'CPU-s':>8} {'wall-s':>8} {'peak RSS MB':>11} {'CPU vs keras':>12}"
    lines += [head, "-" * len(head)]
    for d in datasets:
        runs = os.path.join(work, d, "runs")
        if not os.path.isdir(runs):
            continue
        rs = rows(runs)
        keras_cpu = next((r["cpu"] for n, r in rs if n == "keras-recipe"), None)
        for n, r in rs:
            ratio = f"{r['cpu'] / keras_cpu:.2f}×" if keras_cpu else "—"
            lines.append(f"{d:<8} {n:<28} {fmt_acc(r['acc']):>8} {str(r['epochs']):>7} {r['cpu']:>8.0f} {r['wall']:>8.0f} {r['rss']:>11.0f} {ratio:>12}")
    return "\n".join(lines)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True)
    p.add_argument("--datasets", default="fashion digits")
    p.add_argument("--setting", action="append", default=[])
    args = p.parse_args(argv)
    for s in args.setting:
        print(s)
    print()
    print(table(args.work, args.datasets.split()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
