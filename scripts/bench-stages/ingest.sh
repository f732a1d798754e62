# The consumer's ingest alone (issue 13, goal 4): a stage of scripts/bench, which
# sources this file and calls stage_ingest; do not run it on its own.
#
# consumer/examples/presign.rs signs BENCH_INGEST_COUNT webhooks in advance (distinct
# tasks, each with its own webhook-id, signed with the consumer's WEBHOOK_SECRET as
# the producer signs), one file per wrk thread. wrk (ingest.lua, beside this file)
# sends each of them exactly once to the running release consumer, over
# BENCH_INGEST_CONNECTIONS connections, and reports the rate from its first request to
# its last response; then wrk on GET /healthz at the same threads and connections for
# BENCH_INGEST_SECONDS gives the ceiling. The goal: ingest at >= 50 % of /healthz.
# Exactly once, or the run is wrong and scripts/bench fails: every prepared webhook
# sent once and answered, no non-2xx and no socket error, and the consumer's
# /api/stats total grown by exactly BENCH_INGEST_COUNT (a duplicate is a 200 that
# counts nothing, so a webhook sent twice shows there).
#
# Settings (checked when this file is sourced):
#   BENCH_INGEST (1)                0: skip this stage
#   BENCH_INGEST_COUNT (400000)     webhooks prepared and sent, each once (about 150 MB
#                                   in the temporary directory while the stage runs)
#   BENCH_INGEST_CONNECTIONS (64)   wrk's connections, for the webhooks and for /healthz
#   BENCH_INGEST_SECONDS (10)       length of the /healthz run
#
# Uses from scripts/bench: base, workdir, pids, consumer_pid, redis_pid, bad, is_count,
# consumer_alive, cpu_ticks, ticks_per_s and ms. Sets ingest_table: the stage's
# markdown, empty when it was skipped.

ingest=${BENCH_INGEST:-1}
ingest_count=${BENCH_INGEST_COUNT:-400000}
ingest_connections=${BENCH_INGEST_CONNECTIONS:-64}
ingest_seconds=${BENCH_INGEST_SECONDS:-10}
ingest_table=""

[[ $ingest =~ ^[01]$ ]] || die "BENCH_INGEST must be 1 (run the consumer-ingest stage) or 0 (skip it), got '$ingest'"
is_count "$ingest_count" && [ "$ingest_count" -ge 1 ] \
  || die "BENCH_INGEST_COUNT must be a whole number of webhooks >= 1, got '$ingest_count'"
is_count "$ingest_connections" && [ "$ingest_connections" -ge 1 ] \
  || die "BENCH_INGEST_CONNECTIONS must be a whole number >= 1, got '$ingest_connections'"
is_count "$ingest_seconds" && [ "$ingest_seconds" -ge 1 ] \
  || die "BENCH_INGEST_SECONDS must be a whole number of seconds >= 1, got '$ingest_seconds'"
[ "$ingest" -eq 0 ] || ensure_package wrk wrk

# ingest_fail MESSAGE: an exactly-once check failed: say so, mark the table's "exactly
# once" no, and fail scripts/bench at the end.
ingest_exact=yes
ingest_fail() {
  printf '\033[31merror:\033[0m ingest: %s\n' "$*" >&2
  ingest_exact=no
  bad=1
}

# ingest_field NAME FILE: a value of the "ingest: name value ..." line ingest.lua prints.
ingest_field() {
  awk -v k="$1" '$1 == "ingest:" { for (i = 2; i < NF; i += 2) if ($i == k) print $(i + 1) }' "$2"
}

# ingest_all_done DIR THREADS: true once every wrk thread has marked that all its
# responses are in.
ingest_all_done() {
  local k
  for ((k = 0; k < $2; k++)); do [ -e "$1/requests.$k.done" ] || return 1; done
}

# ingest_replay DIR THREADS PER_THREAD: wrk sends every prepared webhook once, and is
# interrupted once all its threads are done (it would otherwise wait out -d, which is
# only the time limit). wrk's output goes to DIR/wrk.out.
ingest_replay() {
  local dir=$1 threads=$2 per_thread=$3 wrk_pid status=0
  # Time limit: at least 2,000 webhooks/s, far below any sane result.
  local limit=$((60 + ingest_count / 2000))
  wrk --latency -t"$threads" -c"$((threads * per_thread))" -d"${limit}s" \
    -s scripts/bench-stages/ingest.lua "$base/consumetasks" "$dir/requests" "$threads" "$per_thread" \
    >"$dir/wrk.out" 2>&1 &
  wrk_pid=$!
  pids+=("$wrk_pid")
  while kill -0 "$wrk_pid" 2>/dev/null && ! ingest_all_done "$dir" "$threads"; do
    consumer_alive
    sleep 0.1
  done
  ingest_all_done "$dir" "$threads" \
    || ingest_fail "wrk's threads did not all get their responses within ${limit}s"
  kill -INT "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" || status=$?
  cat "$dir/wrk.out" >&2
  [ "$status" -eq 0 ] || die "ingest: wrk exited with status $status (its output is above)"
}

# ingest_check DIR GREW: the exactly-once checks of one run.
ingest_check() {
  local out=$1/wrk.out grew=$2 name value
  [ -n "$(ingest_field elapsed_us "$out")" ] || die "ingest: no result line from ingest.lua in wrk's output (above)"
  [ "$(ingest_field finished "$out")" = "$(ingest_field threads "$out")" ] \
    || ingest_fail "$(ingest_field finished "$out") of $(ingest_field threads "$out") wrk threads got all their responses"
  for name in prepared sent responses; do
    value=$(ingest_field "$name" "$out")
    [ "$value" = "$ingest_count" ] || ingest_fail "wrk $name $value webhooks, expected exactly $ingest_count"
  done
  for name in status_errors socket_errors; do
    value=$(ingest_field "$name" "$out")
    [ "$value" = 0 ] || ingest_fail "wrk saw $value ${name/_/ } (a 4xx or 5xx, or a lost connection, means the stage is wrong)"
  done
  if [ "$grew" -eq "$ingest_count" ]; then
    say "ingest: /api/stats total grew by exactly $ingest_count"
  else
    ingest_fail "/api/stats total grew by $grew, expected exactly $ingest_count"
  fi
}

# ingest_ceiling THREADS CONNECTIONS: wrk on GET /healthz; sets ingest_healthz_rps and
# ingest_healthz_p99 (ms).
ingest_ceiling() {
  local out errors
  say "ingest: wrk -t$1 -c$2 -d${ingest_seconds}s GET /healthz (the ceiling)"
  out=$(wrk --latency -t"$1" -c"$2" -d"${ingest_seconds}s" "$base/healthz") || die "wrk failed: $out"
  printf '%s\n' "$out" >&2
  consumer_alive
  ingest_healthz_rps=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' <<<"$out")
  [ -n "$ingest_healthz_rps" ] || die "ingest: could not read wrk's output: $out"
  ingest_healthz_p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  if [[ $ingest_healthz_p99 =~ ^([0-9.]+)([a-z]+)$ ]]; then
    ingest_healthz_p99=$(ms "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}")
  else
    ingest_healthz_p99="?"
  fi
  errors=$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(",", ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' <<<"$out")
  if [ "$errors" -ne 0 ]; then
    printf '\033[31merror:\033[0m ingest: wrk on /healthz saw %s errors\n' "$errors" >&2
    bad=1
  fi
}

# ingest_ms MICROSECONDS: in milliseconds, two decimals.
ingest_ms() { awk -v v="$1" 'BEGIN { printf "%.2f", v / 1000 }'; }

# stage_ingest: the whole stage; sets ingest_table.
stage_ingest() {
  [ "$ingest" -eq 1 ] || return 0
  local dir=$workdir/ingest c=$ingest_connections threads per_thread
  threads=$((c < $(nproc) ? c : $(nproc)))
  per_thread=$((c / threads))
  c=$((threads * per_thread)) # what wrk opens: the same connections on each thread
  say "ingest: building the presign example (release)"
  cargo build --release --locked -p consumer --example presign \
    || die "the release build of consumer/examples/presign.rs failed (compiler messages above)"
  mkdir -p "$dir"
  target/release/examples/presign --count "$ingest_count" --parts "$threads" --out "$dir/requests" \
    --host "${base#http://}" \
    || die "ingest: presign failed (its message is above)"

  local load before after consumer_cpu redis_cpu
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  say "ingest: wrk -t$threads -c$c sends each of $ingest_count pre-signed webhooks once"
  before=$(stats_total "$base")
  consumer_cpu=$(cpu_ticks "$consumer_pid")
  redis_cpu=$(cpu_ticks "$redis_pid")
  ingest_replay "$dir" "$threads" "$per_thread"
  consumer_cpu=$(($(cpu_ticks "$consumer_pid") - consumer_cpu))
  redis_cpu=$(($(cpu_ticks "$redis_pid") - redis_cpu))
  consumer_alive
  after=$(stats_total "$base")
  rm -f "$dir"/requests.*
  ingest_check "$dir" "$((after - before))"

  ingest_ceiling "$threads" "$c"
  ingest_table=$(ingest_markdown "$dir/wrk.out" "$c" "$threads" "$((after - before))" \
    "$ingest_healthz_rps" "$ingest_healthz_p99" "$consumer_cpu" "$redis_cpu" "$load")
}

# ingest_markdown WRK_OUT CONNECTIONS THREADS GREW HEALTHZ_RPS HEALTHZ_P99 CONSUMER_TICKS
# REDIS_TICKS LOAD: the stage's table.
ingest_markdown() {
  local out=$1 elapsed rate ratio verdict errors
  elapsed=$(ingest_field elapsed_us "$out")
  rate=$(awk -v n="$(ingest_field responses "$out")" -v us="$elapsed" 'BEGIN { printf "%d", (us > 0 ? n * 1e6 / us : 0) }')
  ratio=$(awk -v r="$rate" -v h="$5" 'BEGIN { printf "%.0f", (h > 0 ? 100 * r / h : 0) }')
  verdict=$(awk -v r="$rate" -v h="$5" 'BEGIN { print ((2 * r >= h) ? "met" : "goal missed") }')
  errors=$(($(ingest_field status_errors "$out") + $(ingest_field socket_errors "$out")))
  cat <<EOF
### Consumer ingest alone: pre-signed webhooks, each sent once by wrk, with wrk on \`GET /healthz\` as the ceiling

| connections | webhooks | webhooks/s | p50 ms | p99 ms | max ms | \`/healthz\` requests/s | \`/healthz\` p99 ms | ingest / \`/healthz\` | goal | consumer CPU µs/webhook | redis CPU µs/webhook | /api/stats grew by | non-2xx + socket errors | exactly once |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|
| $2 | $ingest_count | $rate | $(ingest_ms "$(ingest_field p50_us "$out")") | $(ingest_ms "$(ingest_field p99_us "$out")") | $(ingest_ms "$(ingest_field max_us "$out")") | $5 | $6 | $ratio % | ≥ 50 %: $verdict | $(($7 * 1000000 / ticks_per_s / ingest_count)) | $(($8 * 1000000 / ticks_per_s / ingest_count)) | $4 | $errors | $ingest_exact |

Each webhook is a distinct task with its own \`webhook-id\`, signed before the run by
\`consumer/examples/presign.rs\` and sent once by wrk (\`scripts/bench-stages/ingest.lua\`, $3
threads); webhooks/s counts from the first request to the last response, latency is wrk's.
The \`/healthz\` run follows at once, for ${ingest_seconds} s on the same threads and connections.
Load average (1, 5, 15 min) at the start of this stage: $9.
EOF
}
