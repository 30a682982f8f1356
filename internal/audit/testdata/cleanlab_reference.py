"""Reference for internal/audit: cleanlab's own confident learning on the
same out-of-fold probabilities the Go code used.

stdin: a JSON list of cases {"k": K, "labels": [...], "probs": [n*K floats]};
stdout: a JSON list of {"issues": ranked indices, "thresholds": [...],
"joint": [[...]]} from cleanlab.filter.find_label_issues with its default
filter_by ("prune_by_noise_rate") ranked by self confidence (the default
method of cleanlab.rank.get_label_quality_scores), and
cleanlab.count.compute_confident_joint (calibrated, its default).
"""

import json
import sys

import numpy as np
from cleanlab.count import compute_confident_joint, get_confident_thresholds
from cleanlab.filter import find_label_issues

out = []
for case in json.load(sys.stdin):
    k = case["k"]
    labels = np.asarray(case["labels"], dtype=np.int64)
    probs = np.asarray(case["probs"], dtype=np.float64).reshape(len(labels), k)
    issues = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    out.append(
        {
            "issues": [int(i) for i in issues],
            "thresholds": [float(t) for t in get_confident_thresholds(labels, probs)],
            "joint": compute_confident_joint(labels, probs).tolist(),
        }
    )
json.dump(out, sys.stdout)
