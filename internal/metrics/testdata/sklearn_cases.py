"""Label/prediction cases for xcept's metrics, and scikit-learn's answers.

    python sklearn_cases.py generate > cases.json     # the committed fixture
    python sklearn_cases.py reference cases.json      # sklearn's outputs, as JSON

The Go test runs "reference" live with the project's venv, so the expected
values come from the installed scikit-learn and cannot go stale. "generate" is
seeded: rerunning it reproduces cases.json byte for byte.
"""
import json
import sys
import warnings

import numpy as np


def softmax_rows(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    # Six decimals keep the fixture small; both sides read the same float64.
    return np.round(p, 6)


def case(name, classes, y_true, y_pred, probs=None):
    c = {"name": name, "classes": classes,
         "y_true": [int(v) for v in y_true], "y_pred": [int(v) for v in y_pred]}
    if probs is not None:
        c["probs"] = [[float(v) for v in row] for row in probs]
    return c


def with_probs(rng, name, classes, y_true, skill):
    """Predictions whose argmax is the prediction: logits boost the true class."""
    k = len(classes)
    logits = rng.normal(size=(len(y_true), k))
    logits[np.arange(len(y_true)), y_true] += skill
    probs = softmax_rows(logits)
    return case(name, classes, y_true, probs.argmax(axis=1), probs)


def generate():
    rng = np.random.default_rng(20240605)
    cases = []
    flowers = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    cases.append(with_probs(rng, "random_multiclass", flowers,
                            rng.integers(0, 5, size=300), skill=1.5))

    # Class 2 is never predicted: its precision is 0/0.
    y_true = rng.integers(0, 4, size=120)
    y_pred = np.where(rng.random(120) < 0.6, y_true, rng.integers(0, 4, size=120))
    y_pred[y_pred == 2] = 3
    cases.append(case("class_absent_from_predictions", ["cat", "dog", "fox", "owl"], y_true, y_pred))

    # "heron" is predicted but never true (zero support); "ibis" is in
    # labels.txt only, in neither y_true nor y_pred.
    birds = ["crow", "finch", "gull", "heron", "ibis"]
    y_true = rng.integers(0, 3, size=90)
    y_pred = np.where(rng.random(90) < 0.7, y_true, rng.integers(0, 4, size=90))
    cases.append(case("class_with_zero_support", birds, y_true, y_pred))

    y_true = rng.integers(0, 6, size=60)
    cases.append(case("everything_predicted_as_one_class",
                      ["a", "b", "c", "d", "e", "f"], y_true, np.full(60, 1)))

    cases.append(with_probs(rng, "two_classes", ["negative", "positive"],
                            rng.integers(0, 2, size=75), skill=1.0))

    fifty = ["class_%02d_%s" % (i, "x" * (i % 17)) for i in range(50)]
    cases.append(with_probs(rng, "fifty_classes", fifty,
                            rng.integers(0, 50, size=500), skill=2.5))

    # Names whose width Python counts in code points, not bytes.
    cases.append(with_probs(rng, "unicode_names", ["雏菊", "café", "розы"],
                            rng.integers(0, 3, size=40), skill=1.0))

    # Exact binary halves (1/8, 3/8, 5/8): text rounding must be half-even
    # on the exact value, as Python's format does.
    y_true = [0] * 8 + [1] * 8
    y_pred = [0] * 1 + [1] * 7 + [1] * 5 + [0] * 3
    cases.append(case("exact_ties", ["left", "right"], y_true, y_pred))

    cases.append(case("single_sample", ["x", "y", "z"], [2], [0]))

    # No prediction right: scikit-learn then prints supports as floats.
    y_true = rng.integers(0, 4, size=30)
    cases.append(case("no_correct_prediction", ["n", "e", "s", "w"], y_true, (y_true + 1) % 4))

    # Many tiny cases: small counts make exact halves like 0.125 and 0.375
    # common, where only exact rounding agrees.
    for i in range(80):
        k = int(rng.integers(2, 5))
        n = int(rng.integers(1, 17))
        y_true = rng.integers(0, k, size=n)
        y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, k, size=n))
        cases.append(case("tiny_%03d" % i, ["c%d" % j for j in range(k)], y_true, y_pred))
    return cases


def reference(path):
    from sklearn.metrics import classification_report, confusion_matrix, top_k_accuracy_score

    out = []
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)
    for c in cases:
        labels = list(range(len(c["classes"])))
        args = (c["y_true"], c["y_pred"])
        kw = dict(labels=labels, target_names=c["classes"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zero_division="warn" warns; we want its values
            ref = {
                "name": c["name"],
                "report": classification_report(*args, output_dict=True, **kw),
                "text": classification_report(*args, **kw),
                "text_digits_4": classification_report(*args, digits=4, **kw),
                "confusion": confusion_matrix(*args, labels=labels).tolist(),
                "normalized": confusion_matrix(*args, labels=labels, normalize="true").tolist(),
            }
            # top_k_accuracy_score wants a 1-D score for two classes; xcept
            # ranks full probability rows, so compare where sklearn does too.
            if "probs" in c and len(labels) > 2:
                ref["top_k"] = {str(k): top_k_accuracy_score(c["y_true"], c["probs"], k=k, labels=labels)
                                for k in (1, 2, 3, 5) if k < len(labels)}
        out.append(ref)
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    if sys.argv[1:2] == ["generate"]:
        json.dump(generate(), sys.stdout, ensure_ascii=False, indent=None)
        sys.stdout.write("\n")
    elif sys.argv[1:2] == ["reference"] and len(sys.argv) == 3:
        reference(sys.argv[2])
    else:
        sys.exit("usage: sklearn_cases.py generate | reference CASES.json")
