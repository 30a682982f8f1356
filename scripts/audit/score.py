"""Scores an `xcept audit` against the problems plant.py planted
(make bench-audit, scripts/audit/bench_audit.sh).

    score.py --truth PLANTED/truth.json --audit RUN/audit --name NAME [--threshold T]

Prints one JSON line:
  label audit   precision and recall on the flipped training images, and
                cleanlab 2.9's find_label_issues on the same out-of-fold
                probabilities (probabilities.csv): its issue count, the overlap
                (|ours ∩ cleanlab| / max of the two) and whether the first 20
                agree in order;
  near-dups     for each threshold of a grid: the recall on the planted copies
                (a copy counts when its pair with its source is reported), per
                kind, and the share of all pairs of distinct original images
                (neither a copy) that are reported; the audit must have run
                with --near-duplicate-threshold at or below the grid's lowest.
"""

import argparse
import csv
import json
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--truth", required=True)
    ap.add_argument("--audit", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--threshold", type=float, default=None, help="the threshold the product uses (reported beside the grid)")
    a = ap.parse_args()
    truth = json.load(open(a.truth))
    issues = json.load(open(os.path.join(a.audit, "label_issues.json")))
    summary = json.load(open(os.path.join(a.audit, "audit.json")))
    flipped = {f["file"] for f in truth["flipped"]}
    found = [i["file"] for i in issues["issues"]]
    hits = sum(1 for f in found if f in flipped)
    out = {
        "dataset": a.name,
        "audited": issues["images"],
        "flipped": len(flipped),
        "issues": len(found),
        "precision": hits / len(found) if found else 0.0,
        "recall": hits / len(flipped) if flipped else 0.0,
        "seconds": summary["seconds"],
    }

    # cleanlab on the same out-of-fold probabilities.
    from cleanlab.filter import find_label_issues

    with open(os.path.join(a.audit, "probabilities.csv")) as f:
        rows = list(csv.DictReader(f))
    classes = issues["classes"]
    labels = np.array([classes.index(r["given"]) for r in rows])
    probs = np.array([[float(r["prob:" + c]) for c in classes] for r in rows])
    ref = [rows[i]["file"] for i in find_label_issues(labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1)]
    common = len(set(ref) & set(found))
    top = min(20, len(ref), len(found))
    out["cleanlab"] = {"issues": len(ref), "overlap": common / max(len(ref), len(found), 1), "top20_same_order": ref[:top] == found[:top]}

    # Near-duplicates.
    dups = json.load(open(os.path.join(a.audit, "near_duplicates.json")))
    copies = {c["copy"]: c for c in truth["copies"]}
    if not copies:
        print(json.dumps(out))
        return
    # every image of every split: the pairs compared cover them all
    n_all = int((1 + (1 + 8 * summary["pairs_compared"]) ** 0.5) / 2)
    n_orig = n_all - len(copies)
    distinct_pairs = n_orig * (n_orig - 1) // 2
    planted = {}
    distinct = []
    for d in dups:
        p, q, s = d["path"], d["other"], d["similarity"]
        if p in copies or q in copies:
            c = copies.get(p) or copies.get(q)
            other = q if p in copies else p
            if other == c["source"]:
                planted[c["copy"]] = max(planted.get(c["copy"], 0), s)
            continue
        distinct.append(s)
    distinct = np.array(distinct)
    grid = sorted(set([0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95] + ([a.threshold] if a.threshold else [])))
    table = []
    for t in grid:
        row = {"threshold": t, "distinct_pairs_flagged": int((distinct >= t).sum()), "distinct_pair_rate": float((distinct >= t).sum()) / distinct_pairs}
        per = {}
        for kind in sorted({c["kind"] for c in copies.values()}):
            ks = [c for c in copies.values() if c["kind"] == kind]
            per[kind] = sum(1 for c in ks if planted.get(c["copy"], 0) >= t) / len(ks)
        row["planted_recall"] = sum(1 for c in copies if planted.get(c, 0) >= t) / len(copies)
        row["by_kind"] = per
        table.append(row)
    sims = np.array([planted.get(c, 0.0) for c in copies])
    out["near_duplicates"] = {
        "copies": len(copies),
        "distinct_pairs": distinct_pairs,
        "planted_similarity_min_median": [float(sims.min()), float(np.median(sims))],
        "distinct_similarity_quantiles_of_reported": ({q: float(np.quantile(distinct, q)) for q in (0.5, 0.9, 0.99)} if len(distinct) else {}),
        "grid": table,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
