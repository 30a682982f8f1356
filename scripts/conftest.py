"""Shared by the builder's pytest files (pytest loads it first).

scaled(seconds) is the timeout a test gives a subprocess: seconds on an idle
machine, stretched when the machine is busier than its cores (the suite
runs beside go test, which keeps TensorFlow on every core). A timeout here
is a net against a hung child, never the behaviour a test checks: a test
that checks a duration asserts it itself. XCEPT_TEST_TIMEOUT_SCALE=F sets
the factor instead.
"""

import os


def timeout_scale():
    forced = os.environ.get("XCEPT_TEST_TIMEOUT_SCALE")
    if forced:
        return max(1.0, float(forced))
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 1.0
    return max(1.0, load / (os.cpu_count() or 1))


def scaled(seconds):
    return seconds * timeout_scale()
