# A private six-node Redis Cluster (three masters, one replica each) for the scripts that
# measure cluster mode (bench-pubsub, bench's ingest stage). Source it after lib.sh; do
# not run it. The caller's cleanup stops the nodes: cluster_start adds their pids to the
# caller's `pids`, as start_redis does.

# cluster_cli PORT ARGS...: redis-cli against one node, without the \r of INFO replies.
cluster_cli() { local p=$1; shift; redis-cli -p "$p" "$@" | tr -d '\r'; }

# cluster_info_field PORT SECTION FIELD: one field of INFO SECTION (or of CLUSTER INFO
# when SECTION is "cluster-info").
cluster_info_field() {
  if [ "$2" = cluster-info ]; then cluster_cli "$1" cluster info; else cluster_cli "$1" info "$2"; fi \
    | sed -n "s/^$3://p"
}

# cluster_ready: every node sees the whole cluster, six nodes, all slots served, three
# of them replicas, and every replica has synced with its master.
cluster_ready() {
  local p info
  for p in "${cluster_ports[@]}"; do
    info=$(cluster_cli "$p" cluster info) || return 1
    grep -qx 'cluster_state:ok' <<<"$info" && grep -qx 'cluster_known_nodes:6' <<<"$info" \
      && grep -qx 'cluster_slots_ok:16384' <<<"$info" || return 1
    [ "$(cluster_cli "$p" cluster nodes | awk '$3 ~ /slave/' | wc -l)" -eq 3 ] || return 1
    [ "$(cluster_info_field "$p" replication role)" = master ] \
      || [ "$(cluster_info_field "$p" replication master_link_status)" = up ] || return 1
  done
}

# cluster_start DIR FIRST_PORT SETTING [REDIS-SERVER FLAG...]: six nodes on the first
# six ports P from FIRST_PORT with P and P+10000 (the bus) free, each in DIR/P, keeping
# nothing on disk; `redis-cli --cluster create` joins them, and it returns once every
# node reports cluster_state:ok. SETTING names the variable that picks FIRST_PORT, for
# the message when no ports are free. Extra FLAGs are passed to every node. Sets
# cluster_ports and cluster_pids.
cluster_start() {
  local dir=$1 port=$2 setting=$3 p
  shift 3
  cluster_ports=()
  cluster_pids=()
  while [ "${#cluster_ports[@]}" -lt 6 ]; do
    [ "$port" -le 55535 ] \
      || die "found only ${#cluster_ports[@]} free port pairs from $2; run with $setting=<another port>"
    if port_free "$port" && port_free $((port + 10000)); then cluster_ports+=("$port"); fi
    port=$((port + 1))
  done
  say "starting six redis-server cluster nodes on ports ${cluster_ports[*]}"
  for p in "${cluster_ports[@]}"; do
    mkdir -p "$dir/$p"
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 5000 --save "" --appendonly no --dir "$dir/$p" \
      --logfile "$dir/$p/redis.log" "$@" &
    cluster_pids+=($!)
    pids+=($!)
  done
  local i addresses=()
  for i in "${!cluster_ports[@]}"; do
    wait_while_running "redis-server on port ${cluster_ports[i]} (log: $dir/${cluster_ports[i]}/redis.log)" \
      "${cluster_pids[i]}" 10 cluster_node_up "${cluster_ports[i]}"
    addresses+=("127.0.0.1:${cluster_ports[i]}")
  done
  redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
    || die "redis-cli --cluster create failed: $(cat "$dir/create.log")"
  say "waiting for cluster_state:ok on all six nodes"
  wait_until "cluster_state:ok on all six nodes (logs: $dir/*/redis.log)" 30 cluster_ready
}

cluster_node_up() { [ "$(redis-cli -p "$1" ping)" = PONG ]; }

# cluster_stop: stops the nodes cluster_start started (the caller's cleanup would too,
# at exit; this frees the cores for what runs next).
cluster_stop() {
  local pid
  for pid in "${cluster_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${cluster_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  cluster_pids=()
}

# cluster_master_of KEY: "PORT NODE-ID" of the master serving KEY's slot, from
# CLUSTER NODES (id addr flags master ... slots).
cluster_master_of() {
  local slot
  slot=$(cluster_cli "${cluster_ports[0]}" cluster keyslot "$1")
  cluster_cli "${cluster_ports[0]}" cluster nodes | awk -v slot="$slot" '
    $3 ~ /master/ { for (i = 9; i <= NF; i++) { split($i, r, "-"); if (r[2] == "") r[2] = r[1]
      if (slot >= r[1] && slot <= r[2]) { split($2, a, "[:@]"); print a[2], $1 } } }'
}
