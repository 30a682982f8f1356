#!/usr/bin/env bash
# make bench-real: xcept on real labelled images with the real ImageNet
# weights (make fixtures), side by side with the Keras recipe and a classical
# baseline (issue 11). A benchmark, not a test.
#
# Datasets, only what installed packages ship (scripts/bench_real_data.py):
#   fashion  Fashion-MNIST, Debian's dataset-fashion-mnist (apt-get install
#            dataset-fashion-mnist): 28×28 grayscale product photos, far from
#            ImageNet's look; 1,000 train / 200 val / 1,000 test, class-balanced
#   digits   scikit-learn's bundled digits: 8×8, 17 grey levels, farther still;
#            1,000 train / 150 val / 500 test
# Contenders, each its own process (peak RSS its own), the same threads,
# prepared shards, weights and image size:
#   classical       scikit-learn SVC (RBF, defaults) on the raw pixels
#   xcept-defaults  xcept train, then xcept finetune, configs/default.yaml
#   xcept-tuned     the same with --config BENCH_REAL_TUNED, if set: a YAML file
#                   that must set runtime.intra_op_threads/inter_op_threads and
#                   prepare.min_side: 1 itself (it replaces bench.yaml), and may
#                   change train/finetune/augment/callbacks keys only (it trains
#                   on the shards and model prepared with the defaults)
#   keras-recipe    tf-keras model.fit on tf.data: frozen, then fine-tuned
#                   from block11 at 1e-5, the recipe's callbacks
# Test accuracy is each contender's best (val_accuracy) checkpoint on the
# test split; CPU and wall seconds are those of training (both phases),
# not of preparing the shards (shared) or of the test evaluation.
#
# Each contender's result is cached in WORK/DATASET/runs/KEY.jsonl with the
# command that made it: a rerun with the same settings only prints the table;
# BENCH_REAL_FRESH=1 reruns everything. Settings (environment):
#   BENCH_REAL_DATASETS="fashion digits"   BENCH_REAL_SIZE=71 (image side)
#   BENCH_REAL_KERAS_EPOCHS=50  BENCH_REAL_KERAS_FINETUNE_EPOCHS=20 (the recipe's)
#   BENCH_REAL_FINETUNE_EPOCHS=  xcept finetune --epochs (empty: the default)
#   BENCH_REAL_TUNED=FILE.yaml   BENCH_REAL_WORK=bench/real
#   BENCH_INTRA=2 BENCH_INTER=2  XCEPT=bin/xcept  PYTHON=.venv/bin/python
#   WEIGHTS=$XCEPT_CACHE/fixtures/xception_imagenet_notop.h5
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
xcept=$(realpath "${XCEPT:-bin/xcept}")
py=${PYTHON:-$root/.venv/bin/python}
cache=${XCEPT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xcept}
weights=${WEIGHTS:-$cache/fixtures/xception_imagenet_notop.h5}
datasets=${BENCH_REAL_DATASETS:-fashion digits}
size=${BENCH_REAL_SIZE:-71}
keras_epochs=${BENCH_REAL_KERAS_EPOCHS:-50} keras_ft_epochs=${BENCH_REAL_KERAS_FINETUNE_EPOCHS:-20}
ft_epochs=${BENCH_REAL_FINETUNE_EPOCHS:-}
tuned=${BENCH_REAL_TUNED:-}
intra=${BENCH_INTRA:-2} inter=${BENCH_INTER:-2}
work=${BENCH_REAL_WORK:-bench/real}
die() { echo "bench-real: $*" >&2; exit 2; }
[ -x "$xcept" ] || die "$xcept not found: run make build (or make bench-real)"
[ -f "$weights" ] || die "$weights not found: run make fixtures (or set WEIGHTS=PATH.h5)"
[ -z "$tuned" ] || [ -f "$tuned" ] || die "BENCH_REAL_TUNED=$tuned: no such file"
[[ $size =~ ^[0-9]+$ ]] && [ "$size" -ge 71 ] || die "BENCH_REAL_SIZE=$size: Xception needs a whole number of pixels, at least 71"
for d in $datasets; do [[ $d =~ ^(fashion|digits)$ ]] || die "BENCH_REAL_DATASETS: unknown dataset $d (fashion, digits)"; done
[ -n "$tuned" ] && tuned=$(realpath "$tuned")

mkdir -p bench
printf '*\n' >bench/.gitignore # results and scratch data stay out of git
mkdir -p "$work"
work=$(realpath "$work")
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say() { echo "==> $*" >&2; }
quietly() { # COMMAND...: its output only if it fails
	local log=$work/step.log
	"$@" >"$log" 2>&1 || { tail -20 "$log" >&2; echo "bench-real: failed: $*" >&2; return 1; }
}

# cached KEY COMMAND...: runs COMMAND under bench_run.py into runs/KEY.jsonl,
# unless that file holds a finished run of the same command. Rerunning
# NAME-train starts NAME's run folder afresh and reruns its later steps.
cached() {
	local key=$1
	shift
	local events=$dir/runs/$key.jsonl sig=$dir/runs/$key.cmd
	local want
	want=$(printf '%q ' "$@")
	if [ "${BENCH_REAL_FRESH:-0}" != 1 ] && [ -f "$sig" ] && [ "$(cat "$sig")" = "$want" ] &&
		tail -1 "$events" 2>/dev/null | grep -q '"exit": 0'; then
		say "$name $key: cached"
		return 0
	fi
	rm -f "$sig"
	if [[ $key == *-train ]]; then
		rm -rf "${dir:?}/runs/${key%-train}"
		rm -f "$dir/runs/${key%-train}"-{frozen-eval,finetune,eval}.cmd
	fi
	say "$name $key"
	nice -n 5 "$py" scripts/bench_run.py --events "$events" --label "$key" -- "$@"
	printf '%s' "$want" >"$sig"
}

# frozen_first NAME: the frozen phase's test evaluation must see the frozen
# phase's best checkpoint, so it cannot be added after NAME was fine-tuned.
frozen_first() {
	if [ -f "$dir/runs/$1-finetune.cmd" ] && [ ! -f "$dir/runs/$1-frozen-eval.cmd" ]; then
		die "$dir/runs/$1 was fine-tuned before its frozen phase was evaluated: rerun with BENCH_REAL_FRESH=1"
	fi
}

for name in $datasets; do
	dir=$work/$name
	mkdir -p "$dir/runs"
	case $name in
	fashion) split=(--train 1000 --val 200 --test 1000) ;;
	digits) split=(--train 1000 --val 150 --test 500) ;;
	esac
	if [ ! -f "$dir/images/source.json" ]; then
		say "$name: exporting images"
		"$py" scripts/bench_real_data.py export --dataset "$name" --out "$dir/images" "${split[@]}" || exit $?
	fi
	cfg=$dir/bench.yaml
	cat >"$cfg.new" <<EOF
runtime:
  intra_op_threads: $intra
  inter_op_threads: $inter
prepare:
  min_side: 1 # digits are 8×8
EOF
	cmp -s "$cfg.new" "$cfg" || mv "$cfg.new" "$cfg"
	rm -f "$cfg.new"
	ds=$dir/ds$size
	if [ ! -f "$ds/model/model.json" ] || ! grep -q "$(sha256sum "$weights" | cut -c1-64)" "$ds/model/model.json"; then
		say "$name: prepare at $size px"
		quietly "$xcept" --config "$cfg" prepare --data "$dir/images" --out "$ds" --weights "$weights" --image-size "$size"
	fi
	x=("$xcept" --config "$cfg" --json)
	ft=()
	[ -n "$ft_epochs" ] && ft=(--epochs "$ft_epochs")

	cached classical "$py" scripts/bench_real_data.py classical --data "$dir/images" --model svc
	cached xcept-defaults-train "${x[@]}" train --data "$ds" --run "$dir/runs/xcept-defaults" --seed 42
	frozen_first xcept-defaults
	cached xcept-defaults-frozen-eval "${x[@]}" evaluate --run "$dir/runs/xcept-defaults" --split test --out "$dir/runs/xcept-defaults/eval-frozen"
	cached xcept-defaults-finetune "${x[@]}" finetune --run "$dir/runs/xcept-defaults" "${ft[@]}"
	cached xcept-defaults-eval "${x[@]}" evaluate --run "$dir/runs/xcept-defaults" --split test --out "$dir/runs/xcept-defaults/eval"
	if [ -n "$tuned" ]; then
		xt=("$xcept" --config "$tuned" --json)
		cached xcept-tuned-train "${xt[@]}" train --data "$ds" --run "$dir/runs/xcept-tuned" --seed 42
		frozen_first xcept-tuned
		cached xcept-tuned-frozen-eval "${xt[@]}" evaluate --run "$dir/runs/xcept-tuned" --split test --out "$dir/runs/xcept-tuned/eval-frozen"
		cached xcept-tuned-finetune "${xt[@]}" finetune --run "$dir/runs/xcept-tuned"
		cached xcept-tuned-eval "${xt[@]}" evaluate --run "$dir/runs/xcept-tuned" --split test --out "$dir/runs/xcept-tuned/eval"
	fi
	cached keras-recipe "$py" scripts/bench_keras.py fit --dataset "$ds" --workdir "$dir/runs/keras-recipe" --pipeline tfdata \
		--phase recipe --weights "$weights" --epochs "$keras_epochs" --lr 1e-4 \
		--finetune-epochs "$keras_ft_epochs" --finetune-lr 1e-5 --unfreeze-from block11 --test \
		--intra-op-threads "$intra" --inter-op-threads "$inter"
done

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
"$py" scripts/bench_real_report.py --work "$work" --datasets "$datasets" \
	--setting "date=$(date -Iseconds)  xcept=$("$xcept" version | head -1)  host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)" \
	--setting "weights=$(basename "$weights") (Keras Xception ImageNet notop, make fixtures); image side $size px; TensorFlow threads intra $intra, inter $inter everywhere" \
	--setting "keras-recipe: $keras_epochs frozen + $keras_ft_epochs fine-tuning epochs (block11, 1e-5), EarlyStopping/ReduceLROnPlateau as the recipe; xcept-defaults: configs/default.yaml${ft_epochs:+, finetune --epochs $ft_epochs}${tuned:+; xcept-tuned: $(basename "$tuned")}" \
	--setting "load average (1, 5, 15 min)=$load_start at the start, $load_end at the end (cached rows keep their own)" |
	tee "$work/results-$(date +%Y-%m-%d-%H%M).txt"
