#!/usr/bin/env bash
# Multi-worker data-parallel training (issue 16): 1, 2 and 4 local workers
# sharing this machine's cores, fine-tuning the same run on the same global
# batches. Not a test: it prints a table (and writes bench/cluster-DATE.txt).
#
# For n workers it runs `xcept finetune` on a copy of one frozen-phase run,
# the n processes on loopback (--cluster, --task), and reports the chief's
# images/s of the timed epoch (the first is warm-up), every worker's
# CPU-seconds (user+sys) and wall time. The all-reduce's share of a step is
# estimated against a lone process on one worker's shard (batch B/n, same
# threads): share = 1 - t(lone, B/n) / t(cluster, B), per step. On a machine
# whose cores the workers share this overstates the collective (the lone
# process has the cores to itself); on one core per worker it is the cost of
# the all-reduce and of waiting for the slowest worker.
#
# Then, for BENCH_CACHE_WORKERS, it builds the frozen phase's feature cache
# with n workers (each computing its part of the batches, the chief joining
# the parts): `xcept train --epochs 1` on a copy of the dataset without a
# cache, timing the build from the workers' start to the cache's meta.json
# (startup, model loading and the cluster's first collective included) and
# reporting every worker's CPU-seconds of the whole run (the build, one
# head epoch on the cache, the feature-block choice, calibration).
#
# Every row ends with the 1-minute load average: on a machine other work
# shares, the figures are that load's as much as xcept's.
#
# Settings (environment):
#   BENCH_SIZE=96 image side   BENCH_BATCH=16 global batch   BENCH_PER_CLASS=40
#   BENCH_WORKERS="1 2 4"      BENCH_INTRA=1 intra-op threads per worker
#   BENCH_EPOCHS=2 (the first is warm-up)   BENCH_WORK=bench/cluster-work
#   BENCH_CACHE_WORKERS="1 2" (empty: no cache rows)
#   XCEPT=bin/xcept
set -euo pipefail
cd "$(dirname "$0")/.."
xcept=$(realpath "${XCEPT:-bin/xcept}")
size=${BENCH_SIZE:-96} batch=${BENCH_BATCH:-16} per_class=${BENCH_PER_CLASS:-40}
workers=${BENCH_WORKERS:-1 2 4} intra=${BENCH_INTRA:-1} epochs=${BENCH_EPOCHS:-2}
cache_workers=${BENCH_CACHE_WORKERS-1 2}
work=${BENCH_WORK:-bench/cluster-work}
[ -x "$xcept" ] || { echo "bench_cluster: $xcept not found: run make build" >&2; exit 2; }
[ "$epochs" -ge 2 ] || { echo "bench_cluster: BENCH_EPOCHS must be at least 2 (the first is warm-up)" >&2; exit 2; }
mkdir -p bench
printf '*\n' >bench/.gitignore
rm -rf "$work" && mkdir -p "$work"
out=bench/cluster-$(date -u +%Y%m%d-%H%M%S).txt

cfg() { # FILE BATCH
	printf 'runtime:\n  intra_op_threads: %s\n  inter_op_threads: 1\ntrain:\n  batch_size: %s\n' "$intra" "$2" >"$1"
}
cfg "$work/bench.yaml" "$batch"
"$xcept" demo-data --out "$work/images" --classes 3 --per-class "$per_class" --size "$size" --format jpeg --quiet
"$xcept" --config "$work/bench.yaml" --quiet prepare --data "$work/images" --out "$work/ds" --weights none --image-size "$size" >/dev/null
"$xcept" --config "$work/bench.yaml" --quiet train --data "$work/ds" --run "$work/base" --epochs 1 >/dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# last_epoch RUN: "seconds steps images/s" of history.csv's last row.
last_epoch() {
	python3 - "$1" "$2" <<'EOF'
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1] + "/history.csv")))
r = rows[-1]
secs, ips = float(r["seconds"]), float(r["images_per_second"])
images = secs * ips
steps = math.ceil(round(images) / int(sys.argv[2]))
print(f"{secs:.2f} {steps} {ips:.2f}")
EOF
}

# cputime FILE...: the sum of /usr/bin/time's "user sys" lines.
cputime() { awk '{u += $1; s += $2} END {printf "%.1f", u + s}' "$@"; }

# workers N RUN ARGS...: N xcept processes on loopback running ARGS (one
# plain process for N = 1), each under /usr/bin/time (RUN.timeI).
workers() {
	local n=$1 run=$2 list="" pids=() i
	shift 2
	for ((i = 0; i < n; i++)); do list+="${list:+,}127.0.0.1:$(port)"; done
	for ((i = 0; i < n; i++)); do
		local c=()
		[ "$n" -gt 1 ] && c=(--cluster "$list" --task "$i")
		/usr/bin/time -f '%U %S' -o "$run.time$i" "$xcept" "$@" "${c[@]}" >/dev/null 2>"$run.err$i" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || { echo "bench_cluster: a worker of $run failed:" >&2; cat "$run".err* >&2; exit 1; }; done
}

run_cluster() { # N RUN BATCH
	local n=$1 run=$2 b=$3
	cfg "$run.yaml" "$b"
	rm -rf "$run" && cp -r "$work/base" "$run" && rm -f "$run/.lock"
	local started=$SECONDS
	workers "$n" "$run" --config "$run.yaml" --quiet finetune --run "$run" --epochs "$epochs"
	echo $((SECONDS - started))
}

load1() { cut -d' ' -f1 /proc/loadavg; }

{
	echo "# xcept multi-worker fine-tuning, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# ${size} px, weights none, 3 classes × $per_class images, global batch $batch, $intra intra-op thread(s) per worker, epoch 2 of $epochs timed"
	printf '%-8s %10s %9s %11s %10s %9s %14s %6s\n' workers images/s speedup step_ms lone_ms share 'cpu_s(wall_s)' load
} | tee "$out"
base_ips=""
for n in $workers; do
	wall=$(run_cluster "$n" "$work/run$n" "$batch")
	read -r secs steps ips < <(last_epoch "$work/run$n" "$batch")
	cpu=$(cputime "$work/run$n".time*)
	step_ms=$(python3 -c "print(f'{1000*$secs/$steps:.0f}')")
	lone_ms=- share=-
	if [ "$n" -gt 1 ]; then
		shard=$((batch / n))
		run_cluster 1 "$work/lone$n" "$shard" >/dev/null
		read -r lsecs lsteps _ < <(last_epoch "$work/lone$n" "$shard")
		lone_ms=$(python3 -c "print(f'{1000*$lsecs/$lsteps:.0f}')")
		share=$(python3 -c "print(f'{max(0.0, 1 - $lone_ms/$step_ms):.2f}')")
	fi
	base_ips=${base_ips:-$ips}
	speedup=$(python3 -c "print(f'{$ips/$base_ips:.2f}x')")
	printf '%-8s %10s %9s %11s %10s %9s %14s %6s\n' "$n" "$ips" "$speedup" "$step_ms" "$lone_ms" "$share" "$cpu($wall)" "$(load1)" | tee -a "$out"
done

if [ -n "$cache_workers" ]; then
	images=$(python3 -c 'import json, sys; r = {s["name"]: s["records"] for s in json.load(open(sys.argv[1]))["splits"]}; print(r.get("train", 0), r.get("val", 0), sep="/")' "$work/ds/manifest.json")
	{
		echo "# the frozen phase's feature cache (default cache_views with augmentation), train/val images: $images"
		printf '%-8s %9s %9s %14s %6s\n' workers cache_s speedup 'cpu_s(wall_s)' load
	} | tee -a "$out"
	base_cache=""
	for n in $cache_workers; do
		ds="$work/cache-ds$n" run="$work/cache-run$n"
		rm -rf "$ds" "$run" && cp -r "$work/ds" "$ds" && rm -rf "$ds/.cache"
		started=$(date +%s.%N)
		workers "$n" "$run" --config "$work/bench.yaml" --quiet train --data "$ds" --run "$run" --epochs 1
		wall=$(python3 -c "import time; print(f'{time.time() - $started:.0f}')")
		meta=$(ls "$ds"/.cache/features/*/meta.json)
		cache_s=$(python3 -c "import os; print(f'{os.path.getmtime(\"$meta\") - $started:.1f}')")
		base_cache=${base_cache:-$cache_s}
		speedup=$(python3 -c "print(f'{$base_cache/$cache_s:.2f}x')")
		printf '%-8s %9s %9s %14s %6s\n' "$n" "$cache_s" "$speedup" "$(cputime "$run".time*)($wall)" "$(load1)" | tee -a "$out"
	done
fi
echo "# written to $out" >&2
