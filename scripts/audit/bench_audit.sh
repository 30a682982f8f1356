#!/usr/bin/env bash
# make bench-audit: xcept audit on real labelled images with the real ImageNet
# weights (make fixtures) and problems planted at known places (issue 13). A
# measurement, not a test.
#
# For each dataset (Fashion-MNIST from Debian's dataset-fashion-mnist, 1,000
# train / 200 val / 1,000 test; scikit-learn's digits, 1,000 / 150 / 500;
# exported by scripts/bench_real_data.py), scripts/audit/plant.py flips a seeded
# 5% of the training labels and (Fashion-MNIST only: digits are 8 px, too small
# to crop or resize) plants four near-duplicate copies (JPEG q70, 75% size,
# central 90% crop, sepia recolour) of 25 test and 25 validation images into
# the training split. Then prepare (BENCH_AUDIT_SIZE px, default 96), train one
# epoch without augmentation (the run's feature cache holds the images as they
# are), audit with a low near-duplicate threshold (0.5) so that the whole grid
# can be scored, and scripts/audit/score.py prints precision and recall on the
# flipped images, cleanlab's find_label_issues on the same out-of-fold
# probabilities, and planted-copy recall against the share of distinct real
# image pairs flagged per threshold. CPU seconds (user + sys) and wall seconds
# per step are printed too.
#
# Settings (environment): BENCH_AUDIT_DATASETS="fashion digits"
#   BENCH_AUDIT_SIZE=96  BENCH_AUDIT_WORK=bench/audit  XCEPT=bin/xcept
#   PYTHON=.venv/bin/python  WEIGHTS=$XCEPT_CACHE/fixtures/xception_imagenet_notop.h5
set -euo pipefail
cd "$(dirname "$0")/../.."
xcept=$(realpath "${XCEPT:-bin/xcept}")
py=${PYTHON:-.venv/bin/python}
cache=${XCEPT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xcept}
weights=${WEIGHTS:-$cache/fixtures/xception_imagenet_notop.h5}
datasets=${BENCH_AUDIT_DATASETS:-fashion digits}
size=${BENCH_AUDIT_SIZE:-96}
work=${BENCH_AUDIT_WORK:-bench/audit}
die() { echo "bench-audit: $*" >&2; exit 2; }
[ -x "$xcept" ] || die "$xcept not found: run make build (or make bench-audit)"
[ -f "$weights" ] || die "$weights not found: run make fixtures (or set WEIGHTS=PATH.h5)"
[[ $size =~ ^[0-9]+$ ]] && [ "$size" -ge 71 ] || die "BENCH_AUDIT_SIZE=$size: Xception needs a whole number of pixels, at least 71"
mkdir -p bench
printf '*\n' >bench/.gitignore
timed() { # LABEL COMMAND...: runs it, output to WORK/LABEL.log, then one line of CPU and wall seconds
	local label=$1
	shift
	local TIMEFORMAT="$name $label: CPU-s %U user + %S sys, wall-s %R"
	{ time "$@" >"$dir/$label.log" 2>&1 || { tail -20 "$dir/$label.log" >&2; exit 1; }; } 2>&1 | tee -a "$dir/times.txt" >&2
}
for name in $datasets; do
	dir=$work/$name
	mkdir -p "$dir"
	: >"$dir/times.txt"
	case $name in
	fashion) split=(--train 1000 --val 200 --test 1000) copies=25 ;;
	digits) split=(--train 1000 --val 150 --test 500) copies=0 ;;
	*) die "unknown dataset $name (fashion, digits)" ;;
	esac
	[ -f "$dir/images/source.json" ] || "$py" scripts/bench_real_data.py export --dataset "$name" --out "$dir/images" "${split[@]}"
	"$py" scripts/audit/plant.py --images "$dir/images" --out "$dir/planted" --flip 0.05 --copies "$copies" --seed 1
	printf 'runtime:\n  intra_op_threads: 2\n  inter_op_threads: 1\nprepare:\n  min_side: 1 # digits are 8x8\naugment:\n  enabled: false\n' >"$dir/bench.yaml"
	rm -rf "$dir/ds" "$dir/run"
	timed prepare "$xcept" --config "$dir/bench.yaml" prepare --data "$dir/planted" --out "$dir/ds" --weights "$weights" --image-size "$size"
	timed train "$xcept" --config "$dir/bench.yaml" train --data "$dir/ds" --run "$dir/run" --epochs 1
	timed audit "$xcept" --config "$dir/bench.yaml" audit --run "$dir/run" --near-duplicate-threshold 0.5
	"$py" scripts/audit/score.py --truth "$dir/planted/truth.json" --audit "$dir/run/audit" --name "$name" | tee "$dir/score.json"
done
