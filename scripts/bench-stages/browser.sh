# The browser stage of scripts/bench (issue 13: the dashboard's 200 ms budget as a
# benchmark, not a test): e2e/burst.test.js, run on the release binaries, sends a
# burst of BENCH_BROWSER_COUNT signed tasks with the dashboard open in headless
# Chromium and measures the page's longest long task (PerformanceObserver
# "longtask") from the burst's start, and the WebSocket frames the page received.
# Sourced by scripts/bench; not to be run on its own.
#
#   stage_browser    runs the test (its own Redis, consumer and ports; the servers at
#                    nice 10, as in the test) with E2E_BURST_REPORT set, so it writes
#                    its figures as one JSON line; a failed test (a total off, the
#                    page frozen over 1 s, an error on the page) sets bad=1. A long
#                    task over the budget only prints "over budget".
#   report_browser   prints the stage's markdown table (nothing when it was skipped).
#
# Environment:
#   BENCH_BROWSER (1)             0: skip this stage
#   BENCH_BROWSER_COUNT (10000)   tasks in the burst
#
# Needs chromium, node and npm (installed with apt-get when run as root) and the
# test's npm packages (`npm ci` in e2e/, from e2e/package-lock.json).

browser=${BENCH_BROWSER:-1}
browser_count=${BENCH_BROWSER_COUNT:-10000}
browser_row=""
browser_load=""

[[ $browser =~ ^[01]$ ]] || die "BENCH_BROWSER must be 1 (run the browser stage) or 0 (skip it), got '$browser'"
[[ $browser_count =~ ^[1-9][0-9]*$ ]] || die "BENCH_BROWSER_COUNT must be a whole number of tasks >= 1, got '$browser_count'"
if [ "$browser" -eq 1 ]; then
  ensure_package chromium chromium
  ensure_package node nodejs
  ensure_package npm npm
fi

stage_browser() {
  [ "$browser" -eq 1 ] || return 0
  say "browser stage: npm ci in e2e/ (the test's packages)"
  (cd e2e && npm ci --no-audit --no-fund --loglevel=error) >&2 \
    || die "npm ci in e2e/ failed (messages above)"
  browser_load=$(cut -d' ' -f1-3 /proc/loadavg)
  say "browser stage: a burst of $browser_count tasks with the dashboard open (e2e/burst.test.js, release build)"
  local report=$workdir/burst.json status=0
  (cd e2e && E2E_PROFILE=release E2E_BURST_COUNT="$browser_count" E2E_BURST_REPORT="$report" \
    node --test burst.test.js) >&2 || status=$?
  if [ "$status" -ne 0 ] || [ ! -s "$report" ]; then
    printf '\033[31merror:\033[0m %s\n' "browser stage: e2e/burst.test.js failed (status $status; its output is above)" >&2
    bad=1
    return 0
  fi
  local longest budget verdict
  field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" "$report"; }
  longest=$(field longest_ms)
  budget=$(field budget_ms)
  verdict="within budget"
  [ "$longest" -le "$budget" ] || verdict="over budget"
  browser_row="| $(field count) | $(field tasks_per_s) | $(field shown_ms) | $(field frames) | $(field frames_per_s) | $(field long_tasks) | $longest | ≤ $budget | $verdict |"
}

report_browser() {
  [ -n "$browser_row" ] || return 0
  cat <<EOF

### The dashboard in a browser: a burst of signed tasks (\`e2e/burst.test.js\`, headless Chromium)

| tasks | tasks/s sent | chart complete after ms | WebSocket frames | frames/s | long tasks | longest long task ms | budget ms | verdict |
|---:|---:|---:|---:|---:|---:|---:|---:|---|
$browser_row

The longest task that blocked the page's main thread (PerformanceObserver \`longtask\`, 50 ms
or more) from the burst's start until the chart showed every task; the test itself fails only
over 1 s (a frozen page) or on a wrong total. The consumer (release), \`producer send\`
(concurrency 32) and Redis run at \`nice 10\`, so the browser gets what a user's would; load
average (1, 5, 15 min) at the start of this stage: $browser_load.
EOF
}
