#!/bin/sh
# The CUDA libraries of pip's NVIDIA wheels for the xcept binary.
#
#   nvidia_libs.sh SITE              print the LD_LIBRARY_PATH it would set
#   nvidia_libs.sh SITE CMD [ARG...] run CMD with it (the GPU image's entrypoint)
#
# SITE is where `pip install --target SITE "tensorflow[and-cuda]"` put the
# wheels: tensorflow/ next to nvidia/cublas/lib, nvidia/cudnn/lib, ... Every
# SITE/nvidia/*/lib folder goes first on LD_LIBRARY_PATH, in name order,
# before what the variable held. The CUDA wheel's libtensorflow_framework.so.2
# already names most of them in its runpath ($ORIGIN/../nvidia/*/lib), but
# not curand, nvjitlink or nvrtc, and a runpath breaks when the library is
# loaded from elsewhere; LD_LIBRARY_PATH is searched first whatever the path.
# A SITE without any nvidia/*/lib folder exits 5 (the install is broken).
set -eu
site=${1:?usage: nvidia_libs.sh SITE [CMD [ARG...]]}
shift
dirs=""
for d in "$site"/nvidia/*/lib; do
  [ -d "$d" ] && dirs="${dirs:+$dirs:}$d"
done
if [ -z "$dirs" ]; then
  echo "nvidia_libs.sh: $site holds no nvidia/*/lib folder: install the CUDA libraries there with pip install --target $site \"tensorflow[and-cuda]==2.21.0\"" >&2
  exit 5
fi
path="$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ $# -eq 0 ]; then
  echo "$path"
  exit 0
fi
LD_LIBRARY_PATH=$path
export LD_LIBRARY_PATH
exec "$@"
