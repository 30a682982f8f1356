#!/usr/bin/env bash
# make loadtest: a bounded load test of xcept serve on loopback, not part of
# make test. For each configuration (dynamic batching on, then off) it
# starts `xcept serve` on an export (the third round over gRPC, TF Serving's
# PredictionService) of a SIZE px Xception (untrained
# weights: the same compute as a trained model), warms it up, lets CLIENTS
# concurrent clients send requests of IMAGES JPEGs for SECONDS_EACH seconds,
# and reports throughput, p50/p99 latency, errors (the run fails on any),
# the server's mean batch size, its RSS before and after, and its exit code
# after SIGTERM (must be 0).
#
#   CLIENTS=8 SECONDS_EACH=20 SIZE=299 IMAGES=1 WORKERS=1 REPEAT=1 make loadtest
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-8}
SECONDS_EACH=${SECONDS_EACH:-20} # (SECONDS is bash's clock)
SIZE=${SIZE:-299}
IMAGES=${IMAGES:-1}
WORKERS=${WORKERS:-1}
MAX_BATCH=${MAX_BATCH:-32}
BATCH_TIMEOUT=${BATCH_TIMEOUT:-5ms}
work=${WORK:-.cache/loadtest}
x=$PWD/bin/xcept
py=${PYTHON:-python3}

mkdir -p "$work"
model=$work/model-$SIZE
if [ ! -f "$model/model.json" ]; then
	echo "building a $SIZE px Xception (weights none) in $model"
	"$x" build-model --out "$model" --classes circle,square,triangle --image-size "$SIZE" --weights none
fi
export_dir=$work/export/shapes
rm -rf "$export_dir"
mkdir -p "$export_dir"
cp -r "$model/serving" "$export_dir/1"
go build -o "$work/loadtest" ./scripts/loadtest

rss() { awk '/^VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }
# cpu: the process's user+system CPU time in clock ticks. CPU time per
# image is the figure a busy machine skews least (wall-clock throughput
# and latency suffer from every other process).
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm() { awk '/^VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# run NAME SERVE_FLAGS...: one configuration; appends a JSON line to results.
results=$work/results.jsonl
: >"$results"
run() {
	local name=$1
	shift
	local out=$work/serve-$name.out err=$work/serve-$name.err
	"$x" serve --model "$export_dir" --port 0 --json --poll 0 --workers "$WORKERS" "$@" >"$out" 2>"$err" &
	local pid=$!
	local url=""
	for _ in $(seq 600); do
		url=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$out" | head -1)
		[ -n "$url" ] && break
		kill -0 "$pid" 2>/dev/null || { cat "$err"; exit 1; }
		sleep 0.2
	done
	[ -n "$url" ] || { echo "serve did not start"; cat "$err"; kill "$pid"; exit 1; }
	local before
	before=$(rss "$pid")
	local lt=("$work/loadtest" -url "$url/v1/models/shapes:predict" -metrics "$url/metrics" -clients "$CLIENTS" -images "$IMAGES")
	local grpc
	grpc=$(sed -n 's/.*"grpc":"\([^"]*\)".*/\1/p' "$out" | head -1)
	[ -n "$grpc" ] && lt+=(-grpc "$grpc")
	"${lt[@]}" -duration 3s >/dev/null # warm-up: TensorFlow's first runs of each batch size are slow
	echo "== $name: $CLIENTS clients × ${SECONDS_EACH}s on $url"
	local ok=1 cpu0 cpu1
	cpu0=$(cpu "$pid")
	"${lt[@]}" -duration "${SECONDS_EACH}s" -json >"$work/$name.json" || ok=0
	cpu1=$(cpu "$pid")
	local after peak
	after=$(rss "$pid")
	peak=$(hwm "$pid")
	kill -TERM "$pid"
	local code=0
	wait "$pid" || code=$?
	"$py" - "$work/$name.json" "$name" "$before" "$after" "$peak" "$code" "$*" "$((cpu1 - cpu0))" "$(getconf CLK_TCK)" >>"$results" <<'EOF'
import json, sys
path, name, before, after, peak, code, flags, ticks, hz = sys.argv[1:]
r = json.load(open(path))
images = r["requests"] * r["images_per_request"]
r.update(mode=name, flags=flags, rss_before_mb=int(before), rss_after_mb=int(after), rss_peak_mb=int(peak), exit_code=int(code),
         cpu_ms_per_image=1000 * int(ticks) / int(hz) / max(1, images))
print(json.dumps(r))
EOF
	tail -1 "$results"
	if [ "$ok" != 1 ] || [ "$code" != 0 ]; then
		echo "FAILED: $name (errors, or exit code $code after SIGTERM)"
		cat "$err"
		exit 1
	fi
}

# REPEAT alternates the two, so that a machine getting busier or quieter
# does not favour one.
for i in $(seq "${REPEAT:-1}"); do
	run batching --max-batch "$MAX_BATCH" --batch-timeout "$BATCH_TIMEOUT"
	run no-batching --max-batch 0
	run grpc-batching --max-batch "$MAX_BATCH" --batch-timeout "$BATCH_TIMEOUT" --grpc-port "$(free_port)"
done

"$py" - "$results" "$SIZE" "$(nproc)" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"\nxcept serve, Xception {sys.argv[2]} px, {sys.argv[3]} cores, loopback; load average {open('/proc/loadavg').read().split()[0]}")
head = ["mode", "clients", "img/req", "req/s", "img/s", "p50 ms", "p99 ms", "errors", "batch", "CPU ms/img", "RSS before", "RSS after", "peak", "exit"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    print(f"| {r['mode']} | {r['clients']} | {r['images_per_request']} | {r['requests_per_second']:.1f} | {r['images_per_second']:.1f} "
          f"| {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['errors']} | {r.get('mean_batch_rows', 0):.1f} | {r['cpu_ms_per_image']:.0f} "
          f"| {r['rss_before_mb']} MB | {r['rss_after_mb']} MB | {r['rss_peak_mb']} MB | {r['exit_code']} |")
EOF
