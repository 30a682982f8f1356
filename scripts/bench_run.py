"""Runs one benchmark contender as its own process and records what it did.

    bench_run.py --events FILE.jsonl [--label NAME] -- COMMAND [ARGS...]

Every line the command writes (stdout and stderr) becomes an event with the
wall time since the start and the command's CPU time so far (user + system,
read from /proc/PID/stat as the line arrives), so per-epoch throughput and
CPU per image can be read from the epoch lines afterwards. The last event is
the summary from wait4: exit code, wall seconds, CPU seconds and peak RSS
(the process's, or a waited-for child's if larger, as /usr/bin/time reports
it). Stdout lines are echoed to stderr with the label, as progress.

Exits with the command's exit code, printing its last stderr lines on failure.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of pid (all its threads), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields after "(comm)" start at field 3 (state): utime is 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / TICKS


class Recorder:
    def __init__(self, out, pid, start, label):
        self.out, self.pid, self.start, self.label = out, pid, start, label
        self.lock = threading.Lock()
        self.last_cpu = 0.0
        self.tail = []

    def line(self, stream, text):
        t = time.monotonic() - self.start
        with self.lock:
            cpu = cpu_seconds(self.pid)
            if cpu is None:  # exiting: the last reading is the best there is
                cpu = self.last_cpu
            self.last_cpu = cpu
            self.out.write(json.dumps({"t": round(t, 4), "cpu": cpu, "fd": stream, "line": text}) + "\n")
            if stream == "err":
                self.tail = (self.tail + [text])[-20:]
            else:
                print(f"  [{self.label}] {text}", file=sys.stderr, flush=True)

    def pump(self, pipe, stream):
        for raw in iter(pipe.readline, b""):
            self.line(stream, raw.decode("utf-8", "replace").rstrip("\n"))
        pipe.close()


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", required=True, help="JSON-lines file to write")
    p.add_argument("--label", default="run")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        p.error("give the command after --")
    with open(args.events, "w") as out:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        rec = Recorder(out, proc.pid, start, args.label)
        pumps = [threading.Thread(target=rec.pump, args=(pipe, name)) for pipe, name in ((proc.stdout, "out"), (proc.stderr, "err"))]
        for t in pumps:
            t.start()
        # wait4 rather than Popen.wait: it returns the child's rusage.
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        for t in pumps:
            t.join()
        out.write(
            json.dumps(
                {
                    "exit": proc.returncode,
                    "wall": round(wall, 3),
                    "user": usage.ru_utime,
                    "sys": usage.ru_stime,
                    "maxrss_kb": usage.ru_maxrss,
                }
            )
            + "\n"
        )
    if proc.returncode != 0:
        print(f"{args.label}: {' '.join(cmd)} exited with {proc.returncode}; its last messages:", file=sys.stderr)
        for text in rec.tail:
            print("  " + text, file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
