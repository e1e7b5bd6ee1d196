#!/usr/bin/env bash
# Runs the demo in short on an existing build, then checks report.html in
# headless chromium.
#
#   demo_browser_test.sh SOURCE_DIR BUILD_DIR OUT_DIR
#
# How the browser check works: the page has no script, so a correct page
# logs nothing to the console. Chromium with --enable-logging=stderr
# --v=0 prints every console message (console.error, uncaught exceptions)
# as a line holding "CONSOLE" on stderr, at INFO level whatever the
# message's own level, so the test fails on any such line rather than
# only on "ERROR". A positive control (a page that throws) proves the
# check would see it. --dump-dom then shows that the page parsed into the
# expected charts, and --screenshot keeps OUT_DIR/report.png.
set -euo pipefail
SOURCE_DIR="$1"
BUILD_DIR="$2"
OUT_DIR="$3"
mkdir -p "$OUT_DIR"
HTML="$OUT_DIR/report.html"
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. The short demo: real server, simulate, report with the honesty check.
status=0
"$SOURCE_DIR/scripts/demo" --sessions 30000 --build-dir "$BUILD_DIR" \
  --no-build --data-dir "$OUT_DIR/demo-data" --html "$HTML" \
  >"$OUT_DIR/demo.out" 2>&1 || status=$?
if [ "$status" != 0 ]; then
  cat "$OUT_DIR/demo.out" >&2
  fail "scripts/demo exited $status"
fi
cat "$OUT_DIR/demo.out"
for expected in "Figure 1." "Figure 7." "Privacy budget" \
    "Honesty check against the synthetic truth" \
    "No released cohort has fewer than k=10" "rejected     0" \
    "cohortd stopped cleanly"; do
  grep -qF "$expected" "$OUT_DIR/demo.out" || fail "demo output lacks '$expected'"
done
# The tiny cohort simulate plants (9 accounts) is never released.
grep -q "not released: .*farming_fishing_forestry" "$OUT_DIR/demo.out" ||
  fail "farming_fishing_forestry (9 accounts) was released"

# 2. Self-contained: nothing to fetch.
if grep -qiE 'https?://|<script|src=|@import|url\(' "$HTML"; then
  fail "report.html references something outside itself"
fi

command -v chromium >/dev/null || fail "chromium is not installed (scripts/setup)"
chrome() {
  local profile
  profile=$(mktemp -d)
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic \
    --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" \
    --enable-logging=stderr --v=0 "$@"
  local status=$?
  rm -rf "$profile"
  return $status
}
console_lines() { grep -E 'CONSOLE' "$1" || true; }

# 3. Positive control: a page that logs an error and throws is caught.
cat >"$OUT_DIR/control.html" <<'HTML'
<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>
<script>console.error("control");</script><script>notDefined();</script>
</body></html>
HTML
chrome --screenshot="$OUT_DIR/control.png" --window-size=400,300 \
  "file://$OUT_DIR/control.html" >/dev/null 2>"$OUT_DIR/control.err" || true
[ "$(console_lines "$OUT_DIR/control.err" | grep -c 'Uncaught\|control')" -ge 2 ] ||
  fail "the console check would not see errors; chromium said: $(cat "$OUT_DIR/control.err")"

# 4. The report: screenshot with no console output at all.
rm -f "$OUT_DIR/report.png"
chrome --screenshot="$OUT_DIR/report.png" --window-size=1280,5800 \
  "file://$HTML" >/dev/null 2>"$OUT_DIR/chromium.err" ||
  fail "chromium failed: $(cat "$OUT_DIR/chromium.err")"
[ -s "$OUT_DIR/report.png" ] || fail "no screenshot"
if [ -n "$(console_lines "$OUT_DIR/chromium.err")" ]; then
  fail "console messages: $(console_lines "$OUT_DIR/chromium.err")"
fi

# 5. The rendered DOM: every figure, 8 charts and the budget panel.
chrome --dump-dom "file://$HTML" >"$OUT_DIR/report.dom" \
  2>"$OUT_DIR/dump.err" || fail "chromium --dump-dom failed"
[ "$(grep -o '<svg ' "$OUT_DIR/report.dom" | wc -l)" = 9 ] ||
  fail "expected 9 <svg> charts in the rendered DOM"
for n in 1 2 3 4 5 6 7; do
  grep -q "id=\"figure-$n\"" "$OUT_DIR/report.dom" || fail "figure $n missing"
done
echo "PASS: demo ran; report.html rendered with no console output;" \
  "screenshot $OUT_DIR/report.png"
