#!/usr/bin/env bash
# Measures `xcept prepare --no-model` on sets of 640x480 demo JPEGs: throughput
# (images/s, from the --json summary), CPU time per image, and peak RSS (from
# /usr/bin/time -v), for each set size given (default: 2000 and 8000, four
# classes). Memory must not grow with the set size.
#
# usage: bench_prepare.sh [N...]     XCEPT=path/to/xcept  WORK=scratch folder
set -euo pipefail
xcept=${XCEPT:-bin/xcept}
work=${WORK:-$(mktemp -d)}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(2000 8000)
for n in "${sizes[@]}"; do
	data="$work/data-$n" out="$work/ds-$n"
	[ -d "$data" ] || "$xcept" demo-data --out "$data" --classes 4 --per-class $((n / 4)) --size 640x480 --format jpeg --quiet
	/usr/bin/time -v "$xcept" prepare --data "$data" --out "$out" --no-model --json >"$work/summary-$n.json" 2>"$work/time-$n.txt"
	ips=$(grep -o '"images_per_second": [0-9.]*' "$work/summary-$n.json" | cut -d' ' -f2)
	rss=$(grep 'Maximum resident set size' "$work/time-$n.txt" | awk '{print $NF}')
	user=$(grep 'User time' "$work/time-$n.txt" | awk '{print $NF}')
	sys=$(grep 'System time' "$work/time-$n.txt" | awk '{print $NF}')
	cpu=$(grep 'Percent of CPU' "$work/time-$n.txt" | awk '{print $NF}')
	printf '%5d images: %6.1f images/s, %.1f ms CPU per image, CPU %s, peak RSS %d MB\n' \
		"$n" "$ips" "$(echo "($user + $sys) * 1000 / $n" | bc -l)" "$cpu" $((rss / 1024))
done
