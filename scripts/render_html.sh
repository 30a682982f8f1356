#!/usr/bin/env bash
# Render an HTML page (report.html) to a PNG with headless Chromium, so people
# and tests can look at what a browser shows. Nothing is fetched: the page is
# self-contained and every background network feature is off.
#
#   scripts/render_html.sh report.html out.png [WIDTH [HEIGHT]]
#
# HEIGHT is the viewport; the screenshot is that tall (default 5000 px, long
# enough for a report with a gallery). Needs Debian's chromium package
# (apt-get install chromium); set CHROMIUM to use another binary.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 4 ]]; then
	echo "usage: $0 PAGE.html OUT.png [WIDTH [HEIGHT]]" >&2
	exit 2
fi
page=$1 out=$2 width=${3:-1300} height=${4:-5000}

if [[ ! -f $page ]]; then
	echo "error: $page: no such file" >&2
	exit 4
fi
browser=${CHROMIUM:-}
if [[ -z $browser ]]; then
	for b in chromium chromium-browser google-chrome; do
		if command -v "$b" >/dev/null; then browser=$b; break; fi
	done
fi
if [[ -z $browser ]]; then
	echo "error: no Chromium found: apt-get install chromium (or set CHROMIUM)" >&2
	exit 4
fi

# A fresh profile per run: no state from earlier runs, nothing left behind.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
abs_page=$(cd "$(dirname "$page")" && pwd)/$(basename "$page")
abs_out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
rm -f "$abs_out"

"$browser" --headless --no-sandbox --disable-gpu \
	--disable-background-networking --disable-component-update --disable-sync \
	--no-first-run --no-default-browser-check --hide-scrollbars \
	--force-device-scale-factor=1 \
	--user-data-dir="$profile" \
	--window-size="$width,$height" \
	--screenshot="$abs_out" \
	"file://$abs_page" >"$profile/chromium.log" 2>&1 || true

if [[ ! -s $abs_out ]]; then
	echo "error: Chromium wrote no screenshot of $page; its log:" >&2
	tail -n 20 "$profile/chromium.log" >&2
	exit 1
fi
echo "$abs_out"
