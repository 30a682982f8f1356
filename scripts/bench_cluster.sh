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
# Settings (environment):
#   BENCH_SIZE=96 image side   BENCH_BATCH=16 global batch   BENCH_PER_CLASS=40
#   BENCH_WORKERS="1 2 4"      BENCH_INTRA=1 intra-op threads per worker
#   BENCH_EPOCHS=2 (the first is warm-up)   BENCH_WORK=bench/cluster-work
#   XCEPT=bin/xcept
set -euo pipefail
cd "$(dirname "$0")/.."
xcept=$(realpath "${XCEPT:-bin/xcept}")
size=${BENCH_SIZE:-96} batch=${BENCH_BATCH:-16} per_class=${BENCH_PER_CLASS:-40}
workers=${BENCH_WORKERS:-1 2 4} intra=${BENCH_INTRA:-1} epochs=${BENCH_EPOCHS:-2}
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

run_cluster() { # N RUN BATCH
	local n=$1 run=$2 b=$3 list="" pids=() i
	for ((i = 0; i < n; i++)); do list+="${list:+,}127.0.0.1:$(port)"; done
	cfg "$run.yaml" "$b"
	rm -rf "$run" && cp -r "$work/base" "$run" && rm -f "$run/.lock"
	local started=$SECONDS
	for ((i = 0; i < n; i++)); do
		local c=()
		[ "$n" -gt 1 ] && c=(--cluster "$list" --task "$i")
		/usr/bin/time -f '%U %S' -o "$run.time$i" "$xcept" --config "$run.yaml" --quiet finetune --run "$run" --epochs "$epochs" "${c[@]}" \
			>/dev/null 2>"$run.err$i" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || { echo "bench_cluster: a worker of $run failed:" >&2; cat "$run".err* >&2; exit 1; }; done
	echo $((SECONDS - started))
}

{
	echo "# xcept multi-worker fine-tuning, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# ${size} px, weights none, 3 classes × $per_class images, global batch $batch, $intra intra-op thread(s) per worker, epoch 2 of $epochs timed"
	printf '%-8s %10s %9s %11s %10s %9s %14s\n' workers images/s speedup step_ms lone_ms share 'cpu_s(wall_s)'
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
	printf '%-8s %10s %9s %11s %10s %9s %14s\n' "$n" "$ips" "$speedup" "$step_ms" "$lone_ms" "$share" "$cpu($wall)" | tee -a "$out"
done
echo "# written to $out" >&2
