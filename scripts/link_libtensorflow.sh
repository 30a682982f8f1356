#!/usr/bin/env bash
# Points .tf/include and .tf/lib at the libtensorflow xcept builds against and
# loads at run time (the binary's rpath names .tf/lib).
#
#   link_libtensorflow.sh [TF_ROOT] PYTHON
#
# TF_ROOT, when given, is another libtensorflow: an official libtensorflow
# tarball unpacked (include/ and lib/), or the tensorflow/ folder of an
# installed wheel (a GPU wheel, say). Without it, the venv's tensorflow-cpu
# wheel is used.
set -euo pipefail
root=${1:-}
py=${2:?usage: link_libtensorflow.sh [TF_ROOT] PYTHON}
here=$(cd "$(dirname "$0")/.." && pwd)

if [ -z "$root" ]; then
  root=$("$py" -c 'import importlib.util as u; print(u.find_spec("tensorflow").submodule_search_locations[0])')
fi
root=$(cd "$root" && pwd)

inc=""
for d in "$root/include" "$root"; do
  [ -f "$d/tensorflow/c/c_api.h" ] && { inc=$d; break; }
done
lib=""
for d in "$root" "$root/lib"; do
  for n in libtensorflow_cc.so.2 libtensorflow.so.2; do
    [ -e "$d/$n" ] && { lib=$d; break 2; }
  done
done
if [ -z "$inc" ] || [ -z "$lib" ]; then
  echo "error: $root holds no TensorFlow C API (want include/tensorflow/c/c_api.h and libtensorflow_cc.so.2 or lib/libtensorflow.so.2); set TF_ROOT to an official libtensorflow folder or a tensorflow wheel's package folder" >&2
  exit 1
fi
mkdir -p "$here/.tf"
ln -sfn "$inc" "$here/.tf/include"
ln -sfn "$lib" "$here/.tf/lib"
echo "libtensorflow: headers $inc, library $lib"
