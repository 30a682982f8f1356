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
. scripts/demo_weights.sh
weights=$(demo_weights "$x")
echo "demo: base weights: $weights"
step demo-data --out demo/images --classes 3 --per-class 100 --seed 1
step --config "$cfg" prepare --data demo/images --out demo/ds --weights "$weights"
step --config "$cfg" train --data demo/ds --run "$run"
step --config "$cfg" finetune --run "$run"
step --config "$cfg" predict --run "$run" --top-k 2 demo/images/circle/circle_0000.jpg demo/images/square/square_0000.jpg
step --config "$cfg" explain --run "$run" demo/images/triangle/triangle_0000.jpg
step --config "$cfg" evaluate --run "$run" --confusion
step --config "$cfg" export --run "$run" --format savedmodel --out demo/export
step --config "$cfg" export --run "$run" --format tflite --quantize float16 --out demo/export
echo
echo "demo done (base weights: $weights): the evaluation report is $run/report.html (Grad-CAM overlays in $run/explain/);"
echo "exports, each verified against the trained model, are in demo/export/"
