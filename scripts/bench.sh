#!/usr/bin/env bash
# make bench: xcept's training throughput and memory against the recipe's
# Keras model.fit, in one go, on the same data, image size, batch, epochs and
# thread settings (issue 4), after xcept prepare's throughput (issue 3).
#
# Contenders, each its own process (so its peak RSS is its own), run in pairs
# so that a change of machine load hits a pair, not one side:
#   keras-idg       Keras frozen base, the recipe's ImageDataGenerator
#   xcept-cached    xcept train on cached base features        target ≥ 10× keras-idg
#   keras-tfdata    Keras frozen base, a tf.data pipeline on xcept's shards
#   xcept-uncached  xcept train --feature-cache=false          target ≥ 1.0× keras-tfdata
#   keras-finetune  Keras, top blocks unfrozen, tf.data
#   xcept-finetune  xcept finetune (same unfreeze boundary)    target ≥ 1.0× keras-finetune
# and every xcept contender's peak RSS no higher than its baseline's.
#
# The table goes to stdout and to bench/results-DATE.txt (bench_run.py's
# events of each contender to bench/results-DATE-events/). Settings (environment):
#   BENCH_PREPARE=0       skip the prepare section (2,000 and 8,000 640×480 JPEGs)
#   BENCH_SIZE=299        image side          BENCH_BATCH=32    batch size
#   BENCH_CLASSES=3       classes             BENCH_PER_CLASS=60 images per class
#   BENCH_EPOCHS=3        epochs of the image-fed contenders (the first is warm-up)
#   BENCH_CACHED_EPOCHS=20  epochs of the cached contender
#   BENCH_INTRA=2 BENCH_INTER=2  TensorFlow intra-/inter-op threads, both sides
#   BENCH_WORK=bench/work scratch folder (replaced)   BENCH_KEEP=1 keep it afterwards
#   XCEPT=bin/xcept       PYTHON=.venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
xcept=$(realpath "${XCEPT:-bin/xcept}")
py=${PYTHON:-$root/.venv/bin/python}
size=${BENCH_SIZE:-299} batch=${BENCH_BATCH:-32}
classes=${BENCH_CLASSES:-3} per_class=${BENCH_PER_CLASS:-60}
epochs=${BENCH_EPOCHS:-3} cached_epochs=${BENCH_CACHED_EPOCHS:-20}
intra=${BENCH_INTRA:-2} inter=${BENCH_INTER:-2}
work=${BENCH_WORK:-bench/work}
[ "$epochs" -ge 2 ] && [ "$cached_epochs" -ge 2 ] || { echo "bench: BENCH_EPOCHS and BENCH_CACHED_EPOCHS must be at least 2 (the first epoch is warm-up)" >&2; exit 2; }
[ -x "$xcept" ] || { echo "bench: $xcept not found: run make build (or make bench)" >&2; exit 2; }

mkdir -p bench
printf '*\n' >bench/.gitignore # results and scratch data stay out of git
rm -rf "$work"
mkdir -p "$work/runs"
work=$(realpath "$work")
results=bench/results-$(date +%Y-%m-%d-%H%M).txt
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say() { echo "==> $*" >&2; }
quietly() { # COMMAND...: its output only if it fails (TensorFlow's start-up chatter otherwise)
	local log=$work/step.log
	"$@" >"$log" 2>&1 || { tail -20 "$log" >&2; echo "bench: failed: $*" >&2; return 1; }
}

# --- issue 3: prepare --------------------------------------------------------
if [ "${BENCH_PREPARE:-1}" != 0 ]; then
	say "prepare benchmark: 2,000 and 8,000 640×480 JPEGs"
	XCEPT=$xcept WORK=$work/prepare internal/dataset/testdata/bench_prepare.sh 2000 8000 | tee "$work/prepare.txt" >&2
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$work/prepare"
fi

# --- the training data: generated, prepared once, shared by every contender --
cfg=$work/bench.yaml
cat >"$cfg" <<EOF
runtime:
  intra_op_threads: $intra
  inter_op_threads: $inter
train:
  batch_size: $batch
EOF
say "data: $classes classes × $per_class images, ${size} px; model weights none (no network; same architecture)"
"$xcept" demo-data --out "$work/images" --classes "$classes" --per-class "$per_class" --size "$size" --format jpeg --quiet
quietly "$xcept" --config "$cfg" prepare --data "$work/images" --out "$work/ds" --weights none --image-size "$size"
quietly "$py" scripts/bench_keras.py export --dataset "$work/ds" --out "$work/keras-images"
read -r train_n val_n unfreeze < <("$py" -c '
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json")); i = json.load(open(sys.argv[1] + "/model/model.json"))
n = {s["name"]: s["records"] for s in m["splits"]}
print(n["train"], n["val"], i["unfreeze_from"])' "$work/ds")

# --- contenders --------------------------------------------------------------
contender() { # KEY COMMAND...
	local key=$1
	shift
	say "$key"
	"$py" scripts/bench_run.py --events "$work/runs/$key.jsonl" --label "$key" -- "$@"
}
keras() { # KEY ARGS...
	local key=$1
	shift
	contender "$key" "$py" scripts/bench_keras.py fit --dataset "$work/ds" --workdir "$work/runs/$key" \
		--batch-size "$batch" --intra-op-threads "$intra" --inter-op-threads "$inter" "$@"
}
x=("$xcept" --config "$cfg" --json)

keras keras-idg --pipeline idg --images "$work/keras-images" --epochs "$epochs" --lr 1e-4
contender xcept-cached "${x[@]}" train --data "$work/ds" --run "$work/runs/cached" --epochs "$cached_epochs"
keras keras-tfdata --pipeline tfdata --epochs "$epochs" --lr 1e-4
contender xcept-uncached "${x[@]}" train --data "$work/ds" --run "$work/runs/uncached" --epochs "$epochs" --feature-cache=false
keras keras-finetune --pipeline tfdata --phase finetune --unfreeze-from "$unfreeze" --epochs "$epochs" --lr 1e-5
contender xcept-finetune "${x[@]}" finetune --run "$work/runs/uncached" --epochs "$epochs"

# --- report ------------------------------------------------------------------
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
prepare_args=()
[ -f "$work/prepare.txt" ] && prepare_args=(--prepare "$work/prepare.txt")
"$py" scripts/bench_report.py --dir "$work/runs" "${prepare_args[@]}" \
	--setting "date=$(date -Iseconds)  xcept=$("$xcept" version | head -1)  host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)" \
	--setting "data=$classes classes, $train_n training + $val_n validation images (xcept demo-data, prepared once), ${size}×${size} px, batch $batch" \
	--setting "epochs=$epochs per image-fed contender, $cached_epochs cached; finetune unfreezes from $unfreeze; Adam 1e-4 (frozen), 1e-5 (finetune)" \
	--setting "threads=TensorFlow intra_op $intra, inter_op $inter on both sides (xcept runtime.*, Keras tf.config.threading)" \
	--setting "load average (1, 5, 15 min)=$load_start at the start, $load_end at the end" |
	tee "$results"
events=${results%.txt}-events
mkdir -p "$events" && cp "$work"/runs/*.jsonl "$events"/ # small: each line's time and CPU, for a second look
say "saved $results (and each contender's events in $events/)"
[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$work"
