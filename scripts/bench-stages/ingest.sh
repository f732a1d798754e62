# The consumer's ingest alone (issue 13, goal 4; issue 26 for the cluster): a stage of
# scripts/bench, which sources this file and calls stage_ingest; do not run it on its own.
#
# Each variant starts a release consumer of its own on BENCH_INGEST_PORT, with its own
# Redis flags: on scripts/bench's plain redis-server (Unix socket), then
# (BENCH_INGEST_CLUSTER=1) on a plain redis-server over TCP, as the cluster's nodes are
# reached, and on a private six-node Redis Cluster (scripts/lib-cluster.sh), once with
# the cluster's default, WAIT for 1 replica per webhook, and once with
# --redis-wait-replicas 0. Every
# key of the consumer shares the hash tag {taskhooks}, so one master takes every write:
# the table gives that master's CPU (INFO cpu) beside the plain redis-server's.
#
# In each variant consumer/examples/presign.rs signs BENCH_INGEST_COUNT webhooks in
# advance (distinct tasks, each with its own webhook-id, signed with the consumer's
# WEBHOOK_SECRET as the producer signs), one file per wrk thread. wrk (ingest.lua,
# beside this file) sends each of them exactly once, over BENCH_INGEST_CONNECTIONS
# connections, and reports the rate from its first request to its last response. Then
# wrk on GET /healthz of scripts/bench's consumer, at the same threads and connections,
# for BENCH_INGEST_SECONDS gives the ceiling. The goal: ingest at >= 50 % of /healthz.
# Exactly once, or the run is wrong and scripts/bench fails: every prepared webhook
# sent once and answered, no non-2xx and no socket error, and the consumer's
# /api/stats total grown by exactly BENCH_INGEST_COUNT (a duplicate is a 200 that
# counts nothing, so a webhook sent twice shows there).
#
# Settings (checked when this file is sourced):
#   BENCH_INGEST (1)                  0: skip this stage
#   BENCH_INGEST_COUNT (400000)       webhooks prepared and sent, each once, per variant
#                                     (about 150 MB in the temporary directory at a time)
#   BENCH_INGEST_CONNECTIONS (64)     wrk's connections, for the webhooks and for /healthz
#   BENCH_INGEST_SECONDS (10)         length of the /healthz run
#   BENCH_INGEST_PORT (15104)         the port of each variant's consumer
#   BENCH_INGEST_CLUSTER (1)          0: the plain redis-server only, no TCP or cluster variants
#   BENCH_INGEST_CLUSTER_PORT (30100) the first port tried for the cluster's nodes (a node
#                                     needs P and P+10000 free)
#
# Uses from scripts/bench: base, sock, workdir, pids, bad, is_count, consumer_alive,
# cpu_ticks, ticks_per_s, ms and fd 4 (its stderr). Sets ingest_table: the stage's markdown, empty
# when it was skipped.

ingest=${BENCH_INGEST:-1}
ingest_count=${BENCH_INGEST_COUNT:-400000}
ingest_connections=${BENCH_INGEST_CONNECTIONS:-64}
ingest_seconds=${BENCH_INGEST_SECONDS:-10}
ingest_port=${BENCH_INGEST_PORT:-15104}
ingest_cluster=${BENCH_INGEST_CLUSTER:-1}
ingest_cluster_port=${BENCH_INGEST_CLUSTER_PORT:-30100}
ingest_table=""

[[ $ingest =~ ^[01]$ ]] || die "BENCH_INGEST must be 1 (run the consumer-ingest stage) or 0 (skip it), got '$ingest'"
is_count "$ingest_count" && [ "$ingest_count" -ge 1 ] \
  || die "BENCH_INGEST_COUNT must be a whole number of webhooks >= 1, got '$ingest_count'"
is_count "$ingest_connections" && [ "$ingest_connections" -ge 1 ] \
  || die "BENCH_INGEST_CONNECTIONS must be a whole number >= 1, got '$ingest_connections'"
is_count "$ingest_seconds" && [ "$ingest_seconds" -ge 1 ] \
  || die "BENCH_INGEST_SECONDS must be a whole number of seconds >= 1, got '$ingest_seconds'"
is_count "$ingest_port" && [ "$ingest_port" -ge 1 ] && [ "$ingest_port" -le 65535 ] \
  || die "BENCH_INGEST_PORT must be a TCP port, got '$ingest_port'"
[[ $ingest_cluster =~ ^[01]$ ]] \
  || die "BENCH_INGEST_CLUSTER must be 1 (also measure on a Redis Cluster) or 0 (plain Redis only), got '$ingest_cluster'"
is_count "$ingest_cluster_port" && [ "$ingest_cluster_port" -ge 1 ] && [ "$ingest_cluster_port" -le 55000 ] \
  || die "BENCH_INGEST_CLUSTER_PORT must be a TCP port <= 55000 (the bus port is P+10000), got '$ingest_cluster_port'"
if [ "$ingest" -eq 1 ]; then
  ensure_package wrk wrk
  ensure_package redis-cli redis-tools
  port_free "$ingest_port" || die "port $ingest_port is in use; run with BENCH_INGEST_PORT=<another port>"
  [ "$ingest_cluster" -eq 0 ] || source scripts/lib-cluster.sh
fi

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
    -s scripts/bench-stages/ingest.lua "$ingest_base/consumetasks" "$dir/requests" "$threads" "$per_thread" \
    >"$dir/wrk.out" 2>&1 &
  wrk_pid=$!
  pids+=("$wrk_pid")
  while kill -0 "$wrk_pid" 2>/dev/null && ! ingest_all_done "$dir" "$threads"; do
    ingest_alive
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


# ingest_alive: dies, with the log of the variant's consumer, once it has exited.
ingest_alive() {
  kill -0 "$ingest_pid" 2>/dev/null && return 0
  { cat "$ingest_log"; die "ingest: the consumer exited; its log is above"; } >&4 2>&4
}
ingest_healthy() { ingest_alive && curl -fsS -o /dev/null "$ingest_base/healthz"; }
ingest_ready() { curl -fsS -o /dev/null "$ingest_base/readyz"; }

# ingest_node_cpu_us NODE: the CPU a redis-server has used (INFO cpu), in µs; NODE is
# the path of its Unix socket or its port.
ingest_node_cpu_us() {
  case $1 in
    /*) redis_cpu_us -s "$1" ;;
    *) redis_cpu_us -p "$1" ;;
  esac
}

# ingest_variant LABEL KEYS_NODE "NODES" REDIS_FLAG...: one measured run, on a consumer
# of its own started with the REDIS_FLAGs and stopped after. KEYS_NODE is the
# redis-server that holds the consumer's keys (socket or port), NODES every node whose
# CPU is summed (on a cluster, all six). Appends a row to ingest_rows.
ingest_variant() {
  local label=$1 keys_node=$2 nodes=$3 dir=$workdir/ingest threads=$ingest_threads
  shift 3
  ingest_base=http://127.0.0.1:$ingest_port
  ingest_log=$workdir/ingest-consumer.log
  ingest_exact=yes
  say "ingest, $label: consumer $*"
  target/release/consumer --bind "127.0.0.1:$ingest_port" "$@" >"$ingest_log" 2>&1 &
  ingest_pid=$!
  pids+=("$ingest_pid")
  wait_until "the ingest consumer's /healthz" 20 ingest_healthy
  wait_until "the ingest consumer's /readyz (Redis)" 20 ingest_ready
  mkdir -p "$dir"
  target/release/examples/presign --count "$ingest_count" --parts "$threads" --out "$dir/requests" \
    --host "${ingest_base#http://}" \
    || die "ingest: presign failed (its message is above)"

  local load before after consumer_cpu keys_cpu nodes_cpu=0 node
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  say "ingest, $label: wrk -t$threads -c$ingest_c sends each of $ingest_count pre-signed webhooks once"
  before=$(stats_total "$ingest_base")
  consumer_cpu=$(cpu_ticks "$ingest_pid")
  keys_cpu=$(ingest_node_cpu_us "$keys_node")
  for node in $nodes; do nodes_cpu=$((nodes_cpu - $(ingest_node_cpu_us "$node"))); done
  ingest_replay "$dir" "$threads" "$ingest_per_thread"
  consumer_cpu=$(($(cpu_ticks "$ingest_pid") - consumer_cpu))
  keys_cpu=$(($(ingest_node_cpu_us "$keys_node") - keys_cpu))
  for node in $nodes; do nodes_cpu=$((nodes_cpu + $(ingest_node_cpu_us "$node"))); done
  ingest_alive
  after=$(stats_total "$ingest_base")
  rm -f "$dir"/requests.*
  ingest_check "$dir" "$((after - before))"
  kill "$ingest_pid" 2>/dev/null || true
  wait "$ingest_pid" 2>/dev/null || true
  ingest_rows+=("$(ingest_row "$label" "$dir/wrk.out" "$((after - before))" \
    "$((consumer_cpu * 1000000 / ticks_per_s))" "$keys_cpu" "$nodes_cpu" "$load")")
}

# ingest_on_tcp PORT: the control for the cluster variants, which reach their nodes
# over TCP where the plain variant uses a Unix socket: a plain redis-server of its own
# on 127.0.0.1:PORT (its socket only for reading its CPU), stopped after.
ingest_on_tcp() {
  local main_redis_pid=$redis_pid tcp_pid
  mkdir -p "$workdir/ingest-tcp"
  start_redis "$workdir/ingest-tcp" --port "$1" --bind 127.0.0.1
  tcp_pid=$redis_pid
  redis_pid=$main_redis_pid # scripts/bench's Redis stays the one redis_pid names
  ingest_variant "plain redis-server, TCP" "$workdir/ingest-tcp/redis.sock" "$workdir/ingest-tcp/redis.sock" \
    --redis-url "redis://127.0.0.1:$1"
  kill "$tcp_pid" 2>/dev/null || true
  wait "$tcp_pid" 2>/dev/null || true
}

# ingest_on_cluster: the TCP control, then the two cluster variants on a cluster started
# for them and stopped after, so it takes no CPU from the stages that follow.
ingest_on_cluster() {
  local master urls='' p
  cluster_start "$workdir/cluster" "$ingest_cluster_port" BENCH_INGEST_CLUSTER_PORT
  p=$((cluster_ports[5] + 1))
  until port_free "$p"; do p=$((p + 1)); done
  ingest_on_tcp "$p"
  read -r master _ < <(cluster_master_of '{taskhooks}:seq') || true # checked below
  [ -n "${master:-}" ] \
    || die "ingest: no master serves {taskhooks}:seq: $(cluster_cli "${cluster_ports[0]}" cluster nodes)"
  for p in "${cluster_ports[@]}"; do urls+="${urls:+,}redis://127.0.0.1:$p"; done
  say "ingest: {taskhooks}:seq is on master :$master"
  ingest_cluster_master=$master
  ingest_variant "cluster, WAIT 1" "$master" "${cluster_ports[*]}" --redis-cluster-urls "$urls"
  ingest_variant "cluster, WAIT 0" "$master" "${cluster_ports[*]}" --redis-cluster-urls "$urls" \
    --redis-wait-replicas 0
  cluster_stop
}

# stage_ingest: the whole stage; sets ingest_table.
stage_ingest() {
  [ "$ingest" -eq 1 ] || return 0
  local c=$ingest_connections
  ingest_threads=$((c < $(nproc) ? c : $(nproc)))
  ingest_per_thread=$((c / ingest_threads))
  ingest_c=$((ingest_threads * ingest_per_thread)) # what wrk opens: the same connections on each thread
  say "ingest: building the presign example (release)"
  cargo build --release --locked -p consumer --example presign \
    || die "the release build of consumer/examples/presign.rs failed (compiler messages above)"
  ingest_rows=()
  ingest_cluster_master=""
  ingest_variant "plain redis-server" "$sock" "$sock" --redis-url "redis+unix://$sock"
  [ "$ingest_cluster" -eq 0 ] || ingest_on_cluster
  # The ceiling is actix alone, no Redis: scripts/bench's own consumer serves it.
  ingest_ceiling "$ingest_threads" "$ingest_c"
  ingest_table=$(ingest_markdown)
}

# ingest_row LABEL WRK_OUT GREW CONSUMER_US KEYS_US NODES_US LOAD: the cells of one
# variant's row, "|"-separated, without the share of /healthz (measured last).
ingest_row() {
  local out=$2 elapsed rate errors
  elapsed=$(ingest_field elapsed_us "$out")
  rate=$(awk -v n="$(ingest_field responses "$out")" -v us="$elapsed" 'BEGIN { printf "%d", (us > 0 ? n * 1e6 / us : 0) }')
  errors=$(($(ingest_field status_errors "$out") + $(ingest_field socket_errors "$out")))
  # µs per webhook, and in brackets the share of one core over the run.
  per() {
    awk -v t="$1" -v n="$ingest_count" -v e="$elapsed" \
      'BEGIN { printf "%.1f (%.0f %%)", t / n, (e > 0 ? 100 * t / e : 0) }'
  }
  printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$1" "$ingest_c" "$ingest_count" "$rate" \
    "$(ingest_ms "$(ingest_field p50_us "$out")")" "$(ingest_ms "$(ingest_field p99_us "$out")")" \
    "$(per "$4")" "$(per "$5")" "$(per "$6")" "$3" "$errors" "$ingest_exact" "$7"
}

# ingest_markdown: the stage's table, each row with its share of /healthz.
ingest_markdown() {
  local row cells ratio verdict
  cat <<EOF
### Consumer ingest alone: pre-signed webhooks, each sent once by wrk, with wrk on \`GET /healthz\` as the ceiling

| Redis | connections | webhooks | webhooks/s | p50 ms | p99 ms | ingest / \`/healthz\` | goal | consumer CPU µs/webhook (busy) | Redis holding the keys: CPU µs/webhook (busy) | all Redis nodes: CPU µs/webhook (busy) | /api/stats grew by | non-2xx + socket errors | exactly once | load average at its start |
|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---|
EOF
  for row in "${ingest_rows[@]}"; do
    IFS='|' read -r -a cells <<<"$row"
    ratio=$(awk -v r="${cells[3]}" -v h="$ingest_healthz_rps" 'BEGIN { printf "%.0f", (h > 0 ? 100 * r / h : 0) }')
    verdict=$(awk -v r="${cells[3]}" -v h="$ingest_healthz_rps" 'BEGIN { print ((2 * r >= h) ? "met" : "goal missed") }')
    printf '| %s | %s | %s | %s | %s | %s | %s %% | ≥ 50 %%: %s | %s | %s | %s | %s | %s | %s | %s |\n' \
      "${cells[@]:0:6}" "$ratio" "$verdict" "${cells[@]:6}"
  done
  cat <<EOF

Each variant runs a consumer of its own, started for it. Each webhook is a distinct task
with its own \`webhook-id\`, signed before the run by \`consumer/examples/presign.rs\` and
sent once by wrk (\`scripts/bench-stages/ingest.lua\`, $ingest_threads threads); webhooks/s counts
from the first request to the last response, latency is wrk's. "Busy" is CPU time over that
time: 100 % is one core. The first row reaches Redis on a Unix socket, the others over
TCP on 127.0.0.1. The Redis holding the keys is the one redis-server, or on the
cluster the master of \`{taskhooks}:seq\`${ingest_cluster_master:+ (:$ingest_cluster_master)}, since every key of the consumer
shares that hash tag; the cluster is six nodes on this machine (three masters, one replica
each), and WAIT 1, the consumer's default there, answers a webhook once one replica has its
write. The ceiling, wrk on \`GET /healthz\` of scripts/bench's consumer for ${ingest_seconds} s on the
same threads and connections: $ingest_healthz_rps requests/s, p99 $ingest_healthz_p99 ms.
EOF
}
