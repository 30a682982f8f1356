#!/usr/bin/env bash
# make demo: the whole xcept pipeline on a generated dataset, end to end.
# It grows with every command xcept gains; every step's output lands in demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
x=bin/xcept
cfg=configs/demo.yaml
run=demo/runs/shapes
rm -rf demo
step() { echo; echo "==> xcept $*"; "$x" "$@"; }

step version
step demo-data --out demo/images --classes 3 --per-class 100 --seed 1
step --config "$cfg" prepare --data demo/images --out demo/ds
step --config "$cfg" train --data demo/ds --run "$run"
step --config "$cfg" finetune --run "$run"
