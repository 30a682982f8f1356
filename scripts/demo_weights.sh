# Sourced by scripts/demo.sh (and its test, scripts/test_demo_weights.py).
#
# demo_weights XCEPT: prints the base weights `make demo` uses. imagenet when
# Keras can have Xception's ImageNet weights (its cache, ~/.keras/models, or
# a download), tried through xcept itself: a throwaway 71 px build with
# --weights imagenet, so the demo's own build then loads them from Keras's
# cache. Offline it prints none, with one line on stderr saying so and why
# the demo's accuracy is lower. Any other failure of the probe is not
# hidden behind a fallback: its error goes to stderr and the function fails.
demo_weights() {
	local x=$1 probe reason
	probe=$(mktemp -d "${TMPDIR:-/tmp}/xcept-demo-weights.XXXXXX") || return 1
	if "$x" -q build-model --out "$probe/model" --classes a,b --image-size 71 --weights imagenet >/dev/null 2>"$probe/err"; then
		rm -rf "$probe"
		echo imagenet
		return 0
	fi
	reason=$(sed -n 's/.*cannot download the ImageNet weights for Xception (\(.*\)): pass --weights.*/\1/p' "$probe/err" | head -n 1)
	if [ -z "$reason" ]; then
		cat "$probe/err" >&2
		rm -rf "$probe"
		return 1
	fi
	rm -rf "$probe"
	echo "demo: Keras's ImageNet weights for Xception are not in its cache and cannot be downloaded ($reason): using weights none, an untrained base, so accuracy is far below what real weights reach" >&2
	echo none
}
