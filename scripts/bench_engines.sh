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
# Not measured here: xcept serve on onnxruntime and the feature-cache build
# (neither runs on onnxruntime yet).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
x=$root/bin/xcept
py=${PYTHON:-$root/.venv/bin/python}
size=${BENCH_SIZE:-299} m=${BENCH_M:-32} threads=${BENCH_THREADS:-2}
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
echo "onnxruntime Python (anchor, its defaults: spinning): $("$py" scripts/bench_ort.py --model "$onnx" --size "$size" --threads "$threads")"
echo "onnxruntime Python (anchor, spinning off as xcept): $("$py" scripts/bench_ort.py --model "$onnx" --size "$size" --threads "$threads" --spin 0)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
