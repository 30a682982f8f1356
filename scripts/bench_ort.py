"""onnxruntime's own figure for `make bench-engines`: one ONNX model on the
CPU execution provider, fed float32 pixels, timed in this process.

    bench_ort.py --model FILE.onnx --size N [--threads 2] [--calls 15] [--spin 0|1]

Prints {"batch1_ms": median ms of a batch-1 call, "cpu_ms_per_image_b1",
"batch16_ms_per_image": median ms per image of a batch-16 call,
"cpu_ms_per_image_b16": process CPU time per image over the calls of each
batch size}, after one warm-up call of each. --spin sets both thread pools'
allow_spinning (xcept's runtime.onnxruntime_spin); without it onnxruntime's
default (spinning) holds. One inter-op thread, as xcept's benchmark sets.
"""

import argparse
import json
import os
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=15)
    p.add_argument("--spin", choices=["0", "1"])
    a = p.parse_args()
    import numpy as np
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = a.threads
    o.inter_op_num_threads = 1
    if a.spin is not None:
        o.add_session_config_entry("session.intra_op.allow_spinning", a.spin)
        o.add_session_config_entry("session.inter_op.allow_spinning", a.spin)
    s = ort.InferenceSession(a.model, sess_options=o, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    rng = np.random.default_rng(0)
    out = {}
    for batch in (1, 16):
        x = rng.integers(0, 256, (batch, a.size, a.size, 3)).astype(np.float32)
        s.run(None, {name: x})  # warm-up
        times = []
        cpu0 = time.process_time()
        for _ in range(a.calls):
            t = time.perf_counter()
            s.run(None, {name: x})
            times.append(time.perf_counter() - t)
        cpu = time.process_time() - cpu0
        med = sorted(times)[len(times) // 2] * 1000
        if batch == 1:
            out["batch1_ms"] = round(med, 1)
            out["cpu_ms_per_image_b1"] = round(cpu * 1000 / a.calls, 1)
        else:
            out["batch16_ms_per_image"] = round(med / 16, 1)
            out["cpu_ms_per_image_b16"] = round(cpu * 1000 / (16 * a.calls), 1)
    out["loadavg"] = os.getloadavg()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
