"""Tests of make bench-real's Python parts: the datasets exported from what
packages ship, the classical baseline and the table's arithmetic (the Keras recipe's
two phases and test evaluation: bench_test.py's fit test).

Run: TF_USE_LEGACY_KERAS=1 .venv/bin/python -m pytest scripts/bench_real_test.py -q
"""

import json
import os
import subprocess
import sys

import pytest

import bench_real_data
import bench_real_report

HERE = os.path.dirname(os.path.abspath(__file__))


def run(*args, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)


def test_digits_export_is_balanced_disjoint_and_feeds_the_svc(tmp_path):
    out = tmp_path / "digits"
    r = run(os.path.join(HERE, "bench_real_data.py"), "export", "--dataset", "digits", "--out", str(out),
            "--train", "100", "--val", "20", "--test", "50")
    assert r.returncode == 0, r.stderr
    src = json.loads((out / "source.json").read_text())
    assert src["side"] == 8 and src["splits"] == {"test": 50, "train": 100, "val": 20}
    names = {}
    for split in ("train", "val", "test"):
        per_class = [len(os.listdir(out / split / c)) for c in src["classes"]]
        assert sum(per_class) == src["splits"][split] and max(per_class) - min(per_class) <= 1
        names[split] = {f for c in src["classes"] for f in os.listdir(out / split / c)}
    assert not (names["train"] & names["test"]) and not (names["train"] & names["val"]) and not (names["val"] & names["test"])
    r = run(os.path.join(HERE, "bench_real_data.py"), "classical", "--data", str(out))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["test_images"] == 50 and got["train_images"] == 100
    assert 0.8 < got["test_accuracy"] <= 1.0  # digits are easy for an SVC; chance is 0.1


def test_missing_package_and_oversized_split_are_data_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_real_data, "FASHION_DIR", str(tmp_path / "none"))
    assert bench_real_data.main(["export", "--dataset", "fashion", "--out", str(tmp_path / "f")]) == 4
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
    assert bench_real_data.main(["export", "--dataset", "digits", "--out", str(tmp_path / "d"), "--train", "1790"]) == 4
    assert "ask for fewer" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
    with pytest.raises(SystemExit) as e:
        bench_real_data.main(["export", "--dataset", "digits", "--out", str(tmp_path / "d"), "--val", "3"])
    assert e.value.code == 2


def write_events(path, outs, user, wall, rss_kb, exit_code=0):
    with open(path, "w") as f:
        for o in outs:
            f.write(json.dumps({"t": 1, "cpu": 1, "fd": "out", "line": json.dumps(o)}) + "\n")
        f.write(json.dumps({"exit": exit_code, "wall": wall, "user": user, "sys": 1.0, "maxrss_kb": rss_kb}) + "\n")


def test_report_sums_xcept_phases_and_compares_cpu_with_keras(tmp_path):
    runs = tmp_path / "fashion" / "runs"
    runs.mkdir(parents=True)
    write_events(runs / "classical.jsonl", [{"test_accuracy": 0.77}], 9.0, 12.0, 200 * 1024)
    write_events(runs / "xcept-defaults-train.jsonl", [{"phase_epoch": 1}, {"phase_epoch": 2}], 99.0, 300.0, 1000 * 1024)
    write_events(runs / "xcept-defaults-finetune.jsonl", [{"phase_epoch": 1}], 49.0, 100.0, 1500 * 1024)
    write_events(runs / "xcept-defaults-eval.jsonl", [{"result": {"accuracy": 0.85}}], 5.0, 6.0, 900 * 1024)
    write_events(runs / "xcept-defaults-frozen-eval.jsonl", [{"accuracy": 0.82}], 5.0, 6.0, 900 * 1024)
    write_events(runs / "keras-recipe.jsonl", [{"epoch": 1}, {"epoch": 2}, {"test_accuracy": 0.8}], 599.0, 900.0, 2000 * 1024)
    got = {n: r for n, r in bench_real_report.rows(str(runs))}
    assert got["classical (SVC, raw pixels)"]["acc"] == 0.77
    x = got["xcept-defaults"]
    assert (x["acc"], x["cpu"], x["wall"], x["rss"], x["epochs"]) == (0.85, 150.0, 400.0, 1500.0, "2+1")
    f = got["xcept-defaults, frozen only"]
    assert (f["acc"], f["cpu"], f["wall"], f["epochs"]) == (0.82, 100.0, 300.0, "2")
    assert got["keras-recipe"]["cpu"] == 600.0 and got["keras-recipe"]["epochs"] == 2
    table = bench_real_report.table(str(tmp_path), ["fashion"])
    assert "0.25×" in table  # 150 / 600 CPU-s
    write_events(runs / "keras-recipe.jsonl", [], 1.0, 1.0, 1, exit_code=5)
    with pytest.raises(SystemExit, match="exited with 5"):
        bench_real_report.rows(str(runs))
