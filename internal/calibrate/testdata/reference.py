"""Independent reference for internal/calibrate: reads a JSON list of
{"k", "logits", "labels", "probs"} on stdin, writes a list of {ECE, NLL,
fitted temperature} as JSON on stdout.

NLL is scikit-learn's log_loss; the fitted temperature is SciPy's bounded
scalar minimiser on the NLL of softmax(logits / T); ECE is Guo et al.'s
definition written out here (no maintained package that installs next to
tensorflow-cpu without torch computes it): 15 equal-width bins
(b/15, (b+1)/15] of the top probability, Σ |bin|/n · |accuracy − confidence|.
"""

import json
import sys

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.metrics import log_loss


def ece(probs, labels, bins=15):
    conf = probs.max(axis=1)
    hit = (probs.argmax(axis=1) == labels).astype(np.float64)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = (conf > lo) & (conf <= hi) if b else (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(hit[inside].mean() - conf[inside].mean())
    return total


def answer(case):
    k = case["k"]
    labels = np.array(case["labels"])
    probs = np.array(case["probs"], np.float64).reshape(-1, k)
    logits = np.array(case["logits"], np.float64).reshape(-1, k)

    def nll(t):
        return -log_softmax(logits / t, axis=1)[np.arange(len(labels)), labels].mean()

    fit = minimize_scalar(nll, bounds=(0.05, 20), method="bounded", options={"xatol": 1e-10})
    return {
        "ece": ece(probs, labels),
        "nll": log_loss(labels, probs, labels=list(range(k))),
        "temperature": fit.x,
    }


def main():
    json.dump([answer(case) for case in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()
