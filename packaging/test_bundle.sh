#!/usr/bin/env bash
# Launch test of the frozen bundle (pymmcore-gui's habit): start dist/EmbScope/EmbScope --self-test
# on a virtual screen in a clean environment and check READY, the window, a screenshot and the exit.
#
#     bash packaging/test_bundle.sh            # builds the bundle first if dist/EmbScope is missing
#
# Clean environment: no PYTHONPATH, no venv on PATH (PATH=/usr/bin:/bin), HOME in a new temporary
# folder (so the settings, extraction and numba caches start empty: a first start on a new machine).
# Needs Xvfb, xwininfo and ImageMagick's import/convert; installs them with apt when run as root.
# Writes the log and the screenshot to build/bundle-test/. Exit 0 = every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
limit_s=${EMBSCOPE_BUNDLE_LIMIT_S:-300}   # READY within this (a cold numba cache compiles UMAP's kernels)
exe="$repo/dist/EmbScope/EmbScope"
out="$repo/build/bundle-test"
rm -rf "$out" && mkdir -p "$out"

fail() { echo "test_bundle: FAIL: $*" >&2; [ -f "$out/app.log" ] && tail -20 "$out/app.log" >&2; exit 1; }

if [ ! -x "$exe" ]; then
    echo "test_bundle: no bundle yet; building it (bash packaging/build_bundle.sh)"
    bash packaging/build_bundle.sh
fi
need=""
command -v Xvfb >/dev/null || need="$need xvfb"
command -v xwininfo >/dev/null || need="$need x11-utils"
{ command -v import >/dev/null && convert -version 2>/dev/null | grep -q ImageMagick; } || need="$need imagemagick"
if [ -n "$need" ]; then
    [ "$(id -u)" = "0" ] || fail "missing:$need (apt-get install$need)"
    (apt-get update -qq && apt-get install -y -qq $need) >/dev/null 2>&1 || fail "could not install$need"
fi

home="$(mktemp -d)"
# Xvfb picks a free display itself and writes its number to fd 3 once it accepts clients.
Xvfb -displayfd 3 -screen 0 1600x1000x24 -nolisten tcp 3>"$out/display" >"$out/xvfb.log" 2>&1 &
xvfb_pid=$!
app_pid=""
cleanup() {
    [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null || true
    kill "$xvfb_pid" 2>/dev/null || true
    rm -rf "$home"
}
trap cleanup EXIT
for _ in $(seq 600); do [ -s "$out/display" ] && break; sleep 0.1; done
[ -s "$out/display" ] || fail "Xvfb did not start within 60 s: $(tail -3 "$out/xvfb.log")"
display=":$(head -1 "$out/display")"
DISPLAY=$display xwininfo -root >/dev/null 2>&1 || fail "Xvfb on $display does not answer"

# Titles of the mapped top-level windows called EmbScope (exactly, or "EmbScope — source").
embscope_windows() {
    DISPLAY=$display xwininfo -root -tree 2>/dev/null | grep -E '^ +0x[0-9a-f]+ "EmbScope( — [^"]*)?": ' || true
}

start=$(date +%s.%N)
env -i HOME="$home" PATH=/usr/bin:/bin DISPLAY="$display" LANG=C.UTF-8 EMBSCOPE_SELF_TEST_HOLD_S=3 \
    "$exe" --self-test >"$out/app.log" 2>"$out/app.err" &
app_pid=$!

first_window="" ready="" shot=""
while kill -0 "$app_pid" 2>/dev/null; do
    now=$(date +%s.%N)
    elapsed=$(awk -v a="$now" -v b="$start" 'BEGIN { printf "%.1f", a - b }')
    if [ -z "$first_window" ] && [ -n "$(embscope_windows)" ]; then first_window=$elapsed; fi
    if [ -z "$ready" ] && grep -qx READY "$out/app.log"; then
        ready=$elapsed
        # The window stays open EMBSCOPE_SELF_TEST_HOLD_S seconds after READY: look at it now.
        embscope_windows >"$out/windows.txt"
        DISPLAY=$display import -window root "$out/screenshot.png" && shot=1
    fi
    if [ -z "$ready" ] && awk -v e="$elapsed" -v l="$limit_s" 'BEGIN { exit !(e > l) }'; then
        fail "no READY within $limit_s s"
    fi
    sleep 0.2
done
set +e
wait "$app_pid"
rc=$?
set -e
app_pid=""
cat "$out/app.log"
[ "$rc" = 0 ] || fail "exit code $rc: $(grep -m1 'SELF-TEST FAILED' "$out/app.err" || tail -1 "$out/app.err")"
[ -n "$ready" ] || fail "exited 0 without a READY line"
[ -n "$first_window" ] || fail "no window titled EmbScope appeared"
count=$(grep -c . "$out/windows.txt" || true)
[ "$count" = 1 ] || fail "expected one window titled EmbScope, found $count: $(cat "$out/windows.txt")"
grep -q '[0-9]\+x[0-9]\+' "$out/windows.txt" && ! grep -q ' 1x1+' "$out/windows.txt" || fail "the EmbScope window is 1x1"
[ -n "$shot" ] || fail "no screenshot"
# Non-blank: many distinct colours and real contrast (a blank or black screen has one colour).
colours=$(convert "$out/screenshot.png" -format '%k' info:)
spread=$(convert "$out/screenshot.png" -colorspace Gray -format '%[fx:standard_deviation]' info:)
[ "$colours" -gt 200 ] || fail "screenshot looks blank: $colours colours"
awk -v s="$spread" 'BEGIN { exit !(s > 0.05) }' || fail "screenshot looks blank: grey spread $spread"
if grep -Eq 'Traceback|QThread: Destroyed|Segmentation|Aborted' "$out/app.err"; then
    fail "unclean exit: $(grep -m1 -E 'Traceback|QThread|Segmentation|Aborted' "$out/app.err")"
fi
echo "test_bundle: PASS — first window $first_window s, READY $ready s after launch;" \
     "window: $(sed 's/^ *//' "$out/windows.txt" | cut -c1-60); screenshot $colours colours" \
     "($out/screenshot.png)"
