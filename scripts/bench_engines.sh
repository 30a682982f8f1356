#!/usr/bin/env bash
# make bench-engines: xcept predict on TensorFlow and on onnxruntime against
# onnxruntime's own Python figure, one run, the same SIZE px model (weights
# none: the same compute as a trained one), the same threads, each contender
# its own process.
#
# xcept's figures are end to end (Go decoding, resizing and the model): the
# wall and CPU time of `xcept predict --batch B` on B+1+M images minus that on
# B+1 images, divided by M, so process start, model load and the first run
# of each batch shape (a full batch, then the one image left) cancel out. The
# conversion to ONNX happens once, before the timed runs (its own line).
# onnxruntime's own figure (scripts/bench_ort.py) is the median of in-process
# calls on random pixels, with no decoding, with onnxruntime's default options
# and with spinning off as xcept runs it. The decoding and resizing xcept
# does for onnxruntime (Go, per image) is the difference; its cost alone is
# measured by `go test ./internal/infer -bench BenchmarkSquare`.
#
#   BENCH_SIZE=299 BENCH_M=32 BENCH_THREADS=2 make bench-engines
#
# xcept serve on each engine: the serving SavedModel as a TF Serving version
# folder on TensorFlow, and the same weights' ONNX conversion as an ONNX
# export (NAME.onnx, labels.txt) on onnxruntime, with no dynamic batching
# (--max-batch 0: one request is one run) and one worker. After a warm-up
# request of each size, one client (scripts/loadtest) sends requests of 1
# and then of 16 generated 320 px JPEGs (serving_default: decoded and
# resized by the server) for BENCH_SERVE_SECONDS each: wall ms per image
# (1000 / images per second), the median request latency, and the server
# process's CPU ms per image over the timed requests.
# The frozen phase's feature-cache build on each engine: `xcept train
# --epochs 1` on BENCH_CACHE_IMAGES generated images (90% training, 10%
# validation, augmentation off: one forward pass per image), each engine its
# own process, with no cache and no conversion of the base beforehand (the
# conversion is included: it goes in a cache folder of the benchmark's own,
# BENCH_WORK/xcache), minus the same command with the cache already there
# (model load and the head's epoch cancel out). 0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
x=$root/bin/xcept
py=${PYTHON:-$root/.venv/bin/python}
size=${BENCH_SIZE:-299} m=${BENCH_M:-32} threads=${BENCH_THREADS:-2} serve_s=${BENCH_SERVE_SECONDS:-20} cache_n=${BENCH_CACHE_IMAGES:-500}
work=${BENCH_WORK:-$root/bench/engines}
mkdir -p "$work"
export XCEPT_RUNTIME_INTRA_OP_THREADS=$threads XCEPT_RUNTIME_INTER_OP_THREADS=1

model=$work/model-$size
if [ ! -f "$model/model.json" ]; then
	echo "building a $size px Xception (weights none) in $model"
	"$x" build-model --out "$model" --classes a,b,c,d --image-size "$size" --weights none >/dev/null
fi
# A run whose best checkpoint is the serving model's own weights: a
# SavedModel's variables/ is a checkpoint with the same keys.
run=$work/run-$size
if [ ! -f "$run/checkpoints/best/state.json" ]; then
	mkdir -p "$run/checkpoints/best"
	cp "$model/serving/variables/variables.index" "$run/checkpoints/best/ckpt.index"
	cp "$model/serving/variables/variables.data-00000-of-00001" "$run/checkpoints/best/ckpt.data-00000-of-00001"
	echo '{"best_epoch": 1}' >"$run/checkpoints/best/state.json"
	printf '{"format":"xcept-run","version":1,"dataset":"","model":"%s","classes":["a","b","c","d"],"image_size":%d}\n' \
		"$(realpath "$model")" "$size" >"$run/run.json"
fi
# Real photos when the fixture is there, else generated JPEGs.
imgs=$work/images-$m
if [ "$(ls "$imgs" 2>/dev/null | wc -l)" -lt $((m + 17)) ]; then
	rm -rf "$imgs"
	mkdir -p "$imgs"
	src=${XCEPT_CACHE:-$HOME/.cache/xcept}/fixtures/kitchenware
	i=0
	while [ $i -lt $((m + 17)) ]; do
		for f in "$src"/*/*.jpg; do
			[ $i -lt $((m + 17)) ] || break
			cp "$f" "$imgs/$(printf %04d $i).jpg"
			i=$((i + 1))
		done
	done
fi
one=$(ls "$imgs"/*.jpg | head -1)
# first N: the first N images.
first() { ls "$imgs"/*.jpg | head -"$1"; }

# timed ENGINE BATCH FILES...: "wall_s cpu_s" of one xcept predict process.
timed() {
	local engine=$1 batch=$2
	shift 2
	/usr/bin/time -f "%e %U %S" -o "$work/time" "$x" -q predict --run "$run" --engine "$engine" --batch "$batch" "$@" >/dev/null
	awk '{printf "%s %.2f", $1, $2 + $3}' "$work/time"
}

load() { cut -d' ' -f1 /proc/loadavg; }
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(date +%s.%N)
"$x" predict --run "$run" --engine onnxruntime "$one" >/dev/null 2>"$work/convert.err" || { cat "$work/convert.err"; exit 1; }
echo "conversion (first onnxruntime predict, cached afterwards): $(echo "$(date +%s.%N) - $t0" | bc) s wall"
onnx=$(ls "$run"/checkpoints/best/model-*.onnx)

# Contenders: TensorFlow; onnxruntime as xcept runs it (runtime.onnxruntime_spin
# false, the default); onnxruntime with its threads spinning (its own default).
printf '%-36s %10s %10s %10s %10s %6s\n' contender "b1 ms/img" "b1 cpu ms" "b16 ms/img" "b16 cpu ms" load
for contender in tensorflow onnxruntime onnxruntime-spin; do
	engine=${contender%-spin} spin=false
	[ "$contender" = onnxruntime-spin ] && spin=true
	row=()
	for batch in 1 16; do
		# batch+1 images (a full batch and one more: both shapes' first
		# runs) against batch+1+M: the M images between run in full batches.
		read -r w1 c1 <<<"$(XCEPT_RUNTIME_ONNXRUNTIME_SPIN=$spin timed "$engine" "$batch" $(first $((batch + 1))))"
		read -r wn cn <<<"$(XCEPT_RUNTIME_ONNXRUNTIME_SPIN=$spin timed "$engine" "$batch" $(first $((batch + 1 + m))))"
		row+=("$(echo "($wn - $w1) * 1000 / $m" | bc -l | xargs printf %.1f)" "$(echo "($cn - $c1) * 1000 / $m" | bc -l | xargs printf %.1f)")
	done
	printf '%-36s %10s %10s %10s %10s %6s\n' "xcept predict $contender" "${row[@]}" "$(load)"
done

# serve ENGINE EXPORT: one xcept serve process; its row.
go build -o "$work/loadtest" ./scripts/loadtest
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
serve_row() {
	local engine=$1 dir=$2 out=$work/serve.out err=$work/serve.err url="" pid row=()
	"$x" serve --model "$dir" --engine "$engine" --port 0 --json --poll 0 --workers 1 --max-batch 0 --timeout 10m >"$out" 2>"$err" &
	pid=$!
	for _ in $(seq 900); do
		url=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$out" | head -1)
		[ -n "$url" ] && break
		kill -0 "$pid" 2>/dev/null || { cat "$err"; exit 1; }
		sleep 0.2
	done
	[ -n "$url" ] || { echo "serve did not start"; cat "$err"; kill "$pid"; exit 1; }
	local lt=("$work/loadtest" -url "$url/v1/models/$(basename "$dir"):predict" -clients 1 -timeout 10m -json)
	for images in 1 16; do
		"${lt[@]}" -images "$images" -duration 1s >"$work/warm.json" || { cat "$work/warm.json" "$err"; kill "$pid"; exit 1; } # warm-up: each batch shape's first run
		local c0 c1
		c0=$(cpu "$pid")
		"${lt[@]}" -images "$images" -duration "${serve_s}s" >"$work/serve-$images.json" || { cat "$work/serve-$images.json" "$err"; kill "$pid"; exit 1; }
		c1=$(cpu "$pid")
		row+=($("$py" - "$work/serve-$images.json" "$((c1 - c0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["errors"] == 0, r.get("first_error")
n = r["requests"] * r["images_per_request"]
print(f"{1000 / r['images_per_second']:.1f} {1000 * int(sys.argv[2]) / int(sys.argv[3]) / n:.1f} {r['p50_ms']:.1f}")
PY
		))
	done
	kill -TERM "$pid"
	wait "$pid" || true
	# b1 wall, b1 CPU, b16 wall, b16 CPU; the b1 median latency.
	printf '%-36s %10s %10s %10s %10s %6s  (b1 p50 %s ms)\n' "xcept serve $engine" "${row[0]}" "${row[1]}" "${row[3]}" "${row[4]}" "$(load)" "${row[2]}"
}
tfdir=$work/serve-tf/bench ortdir=$work/serve-ort/bench
rm -rf "$tfdir" "$ortdir"
mkdir -p "$tfdir" "$ortdir/1"
cp -r "$model/serving" "$tfdir/1"
cp "$onnx" "$ortdir/1/bench.onnx"
cp "$model/serving/assets/labels.txt" "$ortdir/1/labels.txt"
serve_row tensorflow "$tfdir"
serve_row onnxruntime "$ortdir"

if [ "$cache_n" -gt 0 ]; then
	cds=$work/cache-ds-$size-$cache_n xc=$work/xcache
	if [ ! -f "$cds/manifest.json" ]; then
		rm -rf "$work/cache-images-$cache_n"
		"$x" -q demo-data --out "$work/cache-images-$cache_n" --classes 4 --per-class $((cache_n / 4)) --size 320 --format jpeg
		"$x" -q prepare --data "$work/cache-images-$cache_n" --out "$cds" --image-size "$size" --weights none --split 0.9,0.1,0 >/dev/null
	fi
	# train_once ENGINE: "wall_s cpu_s peak_rss_mb" of one xcept train process.
	train_once() {
		rm -rf "$work/cache-run"
		XCEPT_CACHE=$xc XCEPT_AUGMENT_ENABLED=false /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
			"$x" train --data "$cds" --run "$work/cache-run" --epochs 1 --engine "$1" >/dev/null 2>"$work/train-$1.err" ||
			{ cat "$work/train-$1.err"; exit 1; }
		awk '{printf "%s %.2f %.0f", $1, $2 + $3, $4 / 1024}' "$work/time"
	}
	for engine in tensorflow onnxruntime; do
		rm -rf "$cds/.cache/features" "$xc/onnx"
		read -r wb cb mb <<<"$(train_once "$engine")"
		[ -n "$wb" ] || exit 1 # train_once said why
		grep -h 'engine\|convert' "$work/train-$engine.err" | sed 's/^/    /' || true
		read -r wc cc mc <<<"$(train_once tensorflow)" # the cache is there now
		printf '%-36s build %7.1f s wall %7.1f s CPU (whole train %.1f / %.1f s, peak RSS %s MB; with the cache there %.1f / %.1f s)  load %s\n' \
			"feature cache, $cache_n images, $engine" "$(echo "$wb - $wc" | bc)" "$(echo "$cb - $cc" | bc)" "$wb" "$cb" "$mb" "$wc" "$cc" "$(load)"
	done
fi

echo "onnxruntime Python (anchor, its defaults: spinning): $("$py" scripts/bench_ort.py --model "$onnx" --size "$size" --threads "$threads")"
echo "onnxruntime Python (anchor, spinning off as xcept): $("$py" scripts/bench_ort.py --model "$onnx" --size "$size" --threads "$threads" --spin 0)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
