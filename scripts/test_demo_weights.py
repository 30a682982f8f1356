"""Tests of make demo's weight choice (scripts/demo_weights.sh): imagenet when
xcept can have Keras's ImageNet weights, else none with one line saying why.

Run: .venv/bin/python -m pytest scripts/test_demo_weights.py -q
"""

import os
import re
import subprocess

import pytest
from conftest import scaled

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
XCEPT = os.path.join(ROOT, "bin", "xcept")
FALLBACK = re.compile(
    r"demo: Keras's ImageNet weights for Xception are not in its cache and cannot be downloaded \((?P<reason>[^()]+)\): "
    r"using weights none, an untrained base, so accuracy is far below what real weights reach")


def demo_weights(xcept, env=None, timeout=180):
    return subprocess.run(["bash", "-c", 'set -euo pipefail; . "$0"; demo_weights "$1"',
                           os.path.join(HERE, "demo_weights.sh"), xcept],
                          capture_output=True, text=True, timeout=scaled(timeout), env={**os.environ, **(env or {})})


def stub(tmp_path, body):
    """A stand-in for bin/xcept: a shell script with this body."""
    path = tmp_path / "xcept"
    path.write_text("#!/usr/bin/env bash\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_real_xcept_with_an_empty_keras_cache(tmp_path):
    """The real path, with KERAS_HOME at an empty folder: offline (this
    machine, CI) the demo falls back to none with one line; with network
    Keras downloads the weights into that cache and the demo uses them."""
    if not os.access(XCEPT, os.X_OK):
        if os.environ.get("XCEPT_TEST_STRICT") == "1":
            pytest.fail(f"{XCEPT} is missing: run make build")
        pytest.skip(f"{XCEPT} is missing: run make build")
    keras_home = tmp_path / "keras"
    proc = demo_weights(XCEPT, env={"KERAS_HOME": str(keras_home), "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    if proc.stdout == "none\n":
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and FALLBACK.fullmatch(lines[0]), proc.stderr
        assert "http" not in lines[0]
    else:
        assert proc.stdout == "imagenet\n" and proc.stderr == "", (proc.stdout, proc.stderr)
        assert (keras_home / "models" / "xception_weights_tf_dim_ordering_tf_kernels_notop.h5").exists()
    left = [n for n in os.listdir(tmp_path) if n.startswith("xcept-demo-weights.")]
    assert not left, f"the probe model was left behind: {left}"


def test_weights_at_hand_choose_imagenet(tmp_path):
    proc = demo_weights(stub(tmp_path, 'echo \'{"built": true}\''))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "imagenet\n", "")


def test_the_builders_offline_error_becomes_one_line(tmp_path):
    proc = demo_weights(stub(tmp_path, "echo 'error: /tmp/m: cannot download the ImageNet weights for Xception "
                                       "(Network is unreachable): pass --weights PATH.h5 (Keras Xception notop weights) "
                                       "or --weights none' >&2; exit 5"))
    assert proc.returncode == 0 and proc.stdout == "none\n"
    (line,) = proc.stderr.splitlines()
    assert FALLBACK.fullmatch(line).group("reason") == "Network is unreachable"


def test_another_failure_is_not_hidden_behind_the_fallback(tmp_path):
    proc = demo_weights(stub(tmp_path, "echo 'error: the project venv is broken' >&2; exit 5"))
    assert proc.returncode != 0 and proc.stdout == ""
    assert "the project venv is broken" in proc.stderr
