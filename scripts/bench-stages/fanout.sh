# The fan-out stage of scripts/bench (issue 13, goals 1 and 2): dashboard WebSockets
# of `consumer/examples/wsclient` while `producer send --rate` runs. Sourced by
# scripts/bench after its settings are checked; it uses that script's helpers and
# variables (workdir, sock, pids, bad, cpu_ticks, ticks_per_s, children_us) and
# scripts/lib.sh. Not to be run on its own.
#
#   stage_fanout    measures: builds the client, starts its own release consumer on
#                   BENCH_FANOUT_PORT (its own Redis channel, so the main consumer sees
#                   nothing), then
#                   (a) latency: BENCH_LATENCY_SOCKETS sockets while `producer send
#                       --rate 1000` runs for BENCH_LATENCY_SECONDS, then the same at
#                       5000/s (goals: p99 <= 5 ms and <= 15 ms);
#                   (b) fan-out: BENCH_FANOUT_SOCKETS sockets, on a fresh consumer (so
#                       its peak RSS is this run's), while BENCH_FANOUT_RATE tasks/s
#                       flow for BENCH_FANOUT_SECONDS (goal: RSS <= 30 MB);
#                   every socket must account for every event exactly once by `seq`
#                   (else `bad=1`: scripts/bench then exits non-zero). A missed speed
#                   or memory goal only prints "goal missed"; a run whose producer sent
#                   less than 98 % of the rate asked prints "rate not carried", since
#                   its goal is stated at that rate.
#   report_fanout   prints the stage's markdown table (nothing when it was skipped).
#
# Environment:
#   BENCH_FANOUT (1)              0: skip this stage
#   BENCH_LATENCY_SECONDS (10)    length of each latency run
#   BENCH_LATENCY_SOCKETS (10)    sockets in the latency runs
#   BENCH_FANOUT_SOCKETS (1000)   sockets in the fan-out run
#   BENCH_FANOUT_RATE (5000)      tasks/s in the fan-out run
#   BENCH_FANOUT_SECONDS (10)     length of the fan-out run
#   BENCH_FANOUT_PORT (15103)     the stage's consumer's port
#   BENCH_FANOUT_CONSUMER (target/release/consumer)
#                                 the consumer binary this stage runs: another build
#                                 (an older commit's) to compare before and after

fanout=${BENCH_FANOUT:-1}
latency_seconds=${BENCH_LATENCY_SECONDS:-10}
latency_sockets=${BENCH_LATENCY_SOCKETS:-10}
fanout_sockets=${BENCH_FANOUT_SOCKETS:-1000}
fanout_rate=${BENCH_FANOUT_RATE:-5000}
fanout_seconds=${BENCH_FANOUT_SECONDS:-10}
fanout_port=${BENCH_FANOUT_PORT:-15103}
fanout_consumer=${BENCH_FANOUT_CONSUMER:-target/release/consumer}

[[ $fanout =~ ^[01]$ ]] || die "BENCH_FANOUT must be 1 (run the fan-out stage) or 0 (skip it), got '$fanout'"
fanout_whole() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a whole number >= 1, got '$2'"; }
fanout_whole BENCH_LATENCY_SECONDS "$latency_seconds"
fanout_whole BENCH_LATENCY_SOCKETS "$latency_sockets"
fanout_whole BENCH_FANOUT_SOCKETS "$fanout_sockets"
fanout_whole BENCH_FANOUT_RATE "$fanout_rate"
fanout_whole BENCH_FANOUT_SECONDS "$fanout_seconds"
[[ $fanout_port =~ ^[1-9][0-9]*$ ]] && [ "$fanout_port" -le 65535 ] \
  && [ "$fanout_port" -ne "$port" ] && [ "$fanout_port" -ne "$sink_port" ] \
  || die "BENCH_FANOUT_PORT must be a TCP port other than BENCH_PORT and BENCH_SINK_PORT, got '$fanout_port'"
[ "$fanout" -eq 0 ] || [ -x "$fanout_consumer" ] || [ "$fanout_consumer" = target/release/consumer ] \
  || die "BENCH_FANOUT_CONSUMER is not an executable file: '$fanout_consumer'"
[ "$fanout" -eq 0 ] || port_free "$fanout_port" \
  || die "port $fanout_port is in use; run with BENCH_FANOUT_PORT=<another port>"

# The stage's goals (issue 13): creation-to-socket p99 at 1,000 and 5,000 tasks/s,
# and the consumer's memory with BENCH_FANOUT_SOCKETS sockets.
fanout_latency_goals=("1000:5" "5000:15")
fanout_rss_goal_mb=30
fanout_rows=()
fanout_load=""
fanout_most_sockets=$((fanout_sockets > latency_sockets ? fanout_sockets : latency_sockets))

stage_fanout() {
  [ "$fanout" -eq 1 ] || return 0
  cargo build --release --locked -p consumer --example wsclient \
    || die "the release build of the WebSocket client failed (compiler messages above)"
  fanout_raise_open_files "$fanout_most_sockets"
  fanout_load=$(cut -d' ' -f1-3 /proc/loadavg)
  local goal
  fanout_start_consumer
  for goal in "${fanout_latency_goals[@]}"; do
    fanout_run "latency" "$latency_sockets" "${goal%%:*}" "$latency_seconds" "p99 ≤ ${goal#*:} ms" "${goal#*:}"
  done
  fanout_stop_consumer
  fanout_start_consumer
  fanout_run "fan-out" "$fanout_sockets" "$fanout_rate" "$fanout_seconds" "RSS ≤ $fanout_rss_goal_mb MB" ""
  fanout_stop_consumer
}

# fanout_raise_open_files SOCKETS: the open-files limit that SOCKETS sockets need in
# the client and in the consumer (each inherits this shell's), with room for the rest.
fanout_raise_open_files() {
  local need=$(($1 + 256)) soft hard
  soft=$(ulimit -Sn)
  if [ "$soft" = unlimited ] || [ "$soft" -ge "$need" ]; then return 0; fi
  hard=$(ulimit -Hn)
  if ! ulimit -Sn "$need" 2>/dev/null; then
    die "$1 sockets need about $need open files, but this shell's limit is $soft and its hard limit $hard;
raise the hard limit (e.g. 'ulimit -Hn $need' as root, or nofile in /etc/security/limits.conf)
or lower BENCH_FANOUT_SOCKETS"
  fi
  say "fan-out: open-files limit raised from $soft to $need"
}

fanout_start_consumer() {
  local base=http://127.0.0.1:$fanout_port
  "$fanout_consumer" --bind "127.0.0.1:$fanout_port" --redis-url "redis+unix://$sock" \
    --channel taskhooks-fanout --max-websockets "$fanout_most_sockets" \
    >"$workdir/fanout-consumer.log" 2>&1 &
  fanout_pid=$!
  pids+=("$fanout_pid")
  wait_while_running "the fan-out stage's consumer on $base (log: $workdir/fanout-consumer.log)" \
    "$fanout_pid" 20 curl -fsS -o /dev/null "$base/readyz"
}

fanout_stop_consumer() {
  kill "$fanout_pid" 2>/dev/null || true
  wait "$fanout_pid" 2>/dev/null || true
}

# fanout_seq: the stage's consumer's last event number, from /api/stats.
fanout_seq() {
  local json
  json=$(curl -fsS "http://127.0.0.1:$fanout_port/api/stats") || die "GET /api/stats of the fan-out consumer failed"
  [[ $json =~ \"seq\":([0-9]+) ]] || die "GET /api/stats gave no seq: $json"
  printf '%s\n' "${BASH_REMATCH[1]}"
}

# fanout_socket_counts: the stage's consumer's own count of fresh snapshots sent to
# open sockets, and of sockets it dropped (no pong, or too slow), from its /metrics:
# "RESYNCS DROPPED", the server's side of what the client reports.
fanout_socket_counts() {
  local text
  text=$(curl -fsS "http://127.0.0.1:$fanout_port/metrics") || die "GET /metrics of the fan-out consumer failed"
  awk '
    /^taskhooks_consumer_websocket_resyncs_total[{]/ { resyncs += $2 }
    /^taskhooks_consumer_websockets_closed_total[{]why="(no_pong|too_slow)"[}]/ { dropped += $2 }
    END { printf "%d %d\n", resyncs, dropped }' <<<"$text"
}

# fanout_field NAME: a number, boolean or string (its quotes kept) from the client's one-line JSON result.
fanout_field() {
  sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" "$workdir/wsclient.json"
}

# fanout_run KIND SOCKETS RATE SECONDS GOAL P99_GOAL_MS: one client run while
# `producer send --rate RATE` sends RATE x SECONDS tasks; adds a row to the table.
fanout_run() {
  local kind=$1 sockets=$2 rate=$3 seconds=$4 goal=$5 p99_goal=$6
  local count=$((rate * seconds)) after client_pid status=0 client_status=0
  local consumer_cpu client_open_ticks producer_us client_us peak_kib
  local resyncs_before dropped_before resyncs_after dropped_after
  say "fan-out stage, $kind run: $sockets sockets while producer send --rate $rate --count $count"
  after=$(fanout_seq)
  read -r resyncs_before dropped_before <<<"$(fanout_socket_counts)"
  # Removed here, not only truncated by the redirection below: that happens in the
  # background child, and the wait for `ready` must not read the last run's file.
  rm -f "$workdir/wsclient.json" "$workdir/wsclient.err"
  # The client runs until every socket has every event, or no frame came for 10 s
  # (the producer is done: what is missing is lost), or ten times the run plus 60 s.
  # A machine too slow for the rate sends for longer; it is measured, not failed.
  target/release/examples/wsclient --url "ws://127.0.0.1:$fanout_port/ws" --sockets "$sockets" \
    --events "$count" --after-seq "$after" --quiet-secs 10 --timeout-secs $((10 * seconds + 60)) \
    >"$workdir/wsclient.json" 2>"$workdir/wsclient.err" &
  client_pid=$!
  pids+=("$client_pid")
  # Writes to fd 4 (the script's stderr, set by scripts/bench), which wait_until does not hide.
  client_ready() {
    kill -0 "$client_pid" 2>/dev/null || {
      cat "$workdir/wsclient.err"
      die "the WebSocket client exited before its sockets were open; its messages are above"
    } >&4 2>&4
    grep -q '^ready' "$workdir/wsclient.err"
  }
  wait_until "$sockets WebSocket clients" 60 client_ready
  # CPU from here on. Nothing but the producer and then the client is reaped between
  # the `times` below, so their differences are those two processes' CPU; the
  # client's CPU for opening its sockets is taken off.
  client_open_ticks=$(cpu_ticks "$client_pid")
  consumer_cpu=$(cpu_ticks "$fanout_pid")
  times >"$workdir/times-before"
  target/release/producer send --count "$count" --rate "$rate" --concurrency 64 \
    --target "http://127.0.0.1:$fanout_port/consumetasks" >"$workdir/report" 2>"$workdir/send.err" &
  producer_pid=$!
  wait "$producer_pid" || status=$?
  producer_pid=""
  times >"$workdir/times-sent"
  wait "$client_pid" || client_status=$?
  times >"$workdir/times-after"
  kill -0 "$fanout_pid" 2>/dev/null \
    || { cat "$workdir/fanout-consumer.log" >&2; die "fan-out stage, $kind run: the consumer exited; its log is above"; }
  consumer_cpu=$(($(cpu_ticks "$fanout_pid") - consumer_cpu))
  peak_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$fanout_pid/status")
  producer_us=$(($(children_us "$workdir/times-sent") - $(children_us "$workdir/times-before")))
  client_us=$(($(children_us "$workdir/times-after") - $(children_us "$workdir/times-sent") \
    - client_open_ticks * 1000000 / ticks_per_s))
  cat "$workdir/send.err" "$workdir/report" "$workdir/wsclient.err" "$workdir/wsclient.json" >&2
  [ "$status" -eq 0 ] || { printf '\033[31merror:\033[0m %s\n' "fan-out stage, $kind run: the producer exited with status $status (not every task was delivered)" >&2; bad=1; }
  local published=$(($(fanout_seq) - after))
  read -r resyncs_after dropped_after <<<"$(fanout_socket_counts)"
  [ "$published" -eq "$count" ] || {
    printf '\033[31merror:\033[0m %s\n' "fan-out stage, $kind run: the consumer published $published events, expected exactly $count" >&2
    bad=1
  }
  [ -s "$workdir/wsclient.json" ] || die "fan-out stage, $kind run: the WebSocket client printed no result (status $client_status); its messages are above"
  fanout_row "$kind" "$sockets" "$rate" "$count" "$goal" "$p99_goal" "$consumer_cpu" "$client_us" "$peak_kib" \
    $((resyncs_after - resyncs_before)) $((dropped_after - dropped_before))
  [ "$client_status" -eq 0 ] || bad=1
  say "fan-out stage, $kind run: producer CPU $((producer_us / count)) µs/task"
}

# fanout_row KIND SOCKETS RATE COUNT GOAL P99_GOAL CONSUMER_TICKS CLIENT_US PEAK_KIB RESYNCS DROPPED
fanout_row() {
  local kind=$1 sockets=$2 rate=$3 count=$4 goal=$5 p99_goal=$6 consumer_ticks=$7 client_us=$8 peak_kib=$9
  local resyncs=${10} dropped=${11}
  local sent ok once verdict deliveries p50 p90 p99 max
  sent=$(sed -n 's/^throughput *\([0-9.]*\) tasks\/s.*/\1/p' "$workdir/report")
  ok=$(fanout_field ok)
  read -r p50 p90 p99 max <<<"$(printf '%.2f %.2f %.2f %.2f' "$(fanout_field latency_p50_ms)" \
    "$(fanout_field latency_p90_ms)" "$(fanout_field latency_p99_ms)" "$(fanout_field latency_max_ms)")"
  if [ "$ok" = true ]; then
    once="yes: $(fanout_field received_total) received, $(fanout_field in_snapshots) in $(fanout_field resyncs) resync snapshots"
    [ "$(fanout_field before_open)" = 0 ] || once="$once, $(fanout_field before_open) before the sockets opened"
  else
    once="**NO**: $(fanout_field duplicates) duplicates, $(fanout_field gaps) gaps, $(fanout_field missing) missing, $(fanout_field complete_sockets) of $sockets sockets complete"
    printf '\033[31merror:\033[0m %s\n' "fan-out stage, $kind run: not every socket got every event exactly once ($once)" >&2
    bad=1
  fi
  # The consumer's own counters, when they have something to say.
  [ "$resyncs" = 0 ] && [ "$dropped" = 0 ] \
    || once="$once; the consumer counted $resyncs resyncs and $dropped sockets dropped"
  deliveries=$((count * sockets))
  if [ -n "$p99_goal" ]; then
    verdict=$(awk -v p="$p99" -v g="$p99_goal" 'BEGIN { print (p <= g) ? "met" : "goal missed" }')
  else
    verdict=$(awk -v r="$peak_kib" -v g="$fanout_rss_goal_mb" 'BEGIN { print (r / 1024 <= g) ? "met" : "goal missed" }')
  fi
  if [ "$verdict" = met ]; then
    verdict=$(awk -v s="${sent:-0}" -v r="$rate" 'BEGIN {
      if (s >= 0.98 * r) print "met"; else printf "rate not carried: %d %% sent", 100 * s / r }')
  fi
  if [ "$ok" != true ]; then
    verdict="count off"
    # A socket the consumer closed (1008 "no answer to pings": its client fell too
    # far behind to answer in time) is the server bounding its memory, not an event
    # lost by it; say so beside the count.
    local dropped
    dropped=$(fanout_field dropped_by_consumer)
    [ "${dropped:-0}" = 0 ] \
      || verdict="count off: $dropped closed by the consumer ($(fanout_field dropped_reason | tr -d '"'))"
  fi
  fanout_rows+=("| $kind | $sockets | $rate | ${sent%.*} | $count | $once | $p50 | $p90 | $p99 | $max \
| $(awk -v t="$consumer_ticks" -v hz="$ticks_per_s" -v n="$deliveries" 'BEGIN { printf "%.3f", t * 1000000 / hz / n }') \
| $(awk -v k="$peak_kib" 'BEGIN { printf "%.1f", k / 1024 }') \
| $(awk -v us="$client_us" -v n="$deliveries" 'BEGIN { printf "%.3f", us / n }') | $goal | $verdict |")
}

report_fanout() {
  [ "${#fanout_rows[@]}" -gt 0 ] || return 0
  cat <<EOF

### Every event to every socket: WebSocket clients (\`consumer/examples/wsclient\`) while \`producer send --rate\` runs

| run | sockets | tasks/s asked | tasks/s sent | events per socket | every event exactly once | p50 ms | p90 ms | p99 ms | max ms | consumer CPU µs per delivered event | consumer peak RSS MB | client CPU µs per delivered event | goal | verdict |
|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|
$(printf '%s\n' "${fanout_rows[@]}")

Latency is from a task's \`created_at\` (stamped by the producer in whole milliseconds as it
starts the delivery, so each figure is the true one plus 0 to 1 ms) to the arrival of its frame
at the client. A delivered event is one event on one socket (events × sockets); the consumer's
CPU is over the whole run, receiving the webhooks included; its peak RSS is its VmHWM, on a
consumer started for the run. Where the consumer's own counters (\`/metrics\`) show fresh
snapshots sent to open sockets or sockets it dropped during the run, the "exactly once" column
gives them too. The consumer, the producer and the client share the cores;
load average (1, 5, 15 min) at the start of this stage: $fanout_load.
EOF
}
