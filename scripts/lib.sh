# Helpers shared by the scripts (test, demo, bench, bench-dedupe, bench-pubsub, soak). Source it; do not run it.

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

apt_updated=""
# install_package COMMAND PACKAGE [APT-GET OPTION...]: when COMMAND is missing, installs
# PACKAGE with apt-get (as root), passing the options (e.g. --no-install-recommends).
# Returns non-zero, having said why, when COMMAND is still missing.
install_package() {
  local command=$1 package=$2
  shift 2
  command -v "$command" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "$command not found, and only root with apt-get can install it here"
    return 1
  fi
  say "$command not found: installing Debian package $package"
  if [ -z "$apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || { say "apt-get update failed"; return 1; }
    apt_updated=yes
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" "$package" >&2 \
    || { say "apt-get install $package failed"; return 1; }
  command -v "$command" >/dev/null 2>&1 || { say "$package installed but $command is still not on PATH"; return 1; }
}

# ensure_package COMMAND PACKAGE [APT-GET OPTION...]: install_package, or stop saying
# exactly what to do.
ensure_package() {
  install_package "$@" \
    || die "$1 is missing. Install it first: 'sudo apt-get install $2' on Debian/Ubuntu \
(or your system's package for it, e.g. 'brew install ${2%-server}' on macOS), then run again."
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 \
    || die "cargo is missing. Install Rust from https://rustup.rs (curl ... | sh), open a new shell, then run again."
}

# port_free PORT: true when nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until WHAT SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_until() {
  local what=$1 seconds=$2; shift 2
  for _ in $(seq $((seconds * 10))); do "$@" 2>/dev/null && return 0; sleep 0.1; done
  die "$what did not come up within ${seconds}s"
}

# wait_while_running WHAT PID SECONDS COMMAND...: wait_until, but fails at once when
# process PID has exited (its own message says why).
wait_while_running() {
  local what=$1 pid=$2 seconds=$3; shift 3
  for _ in $(seq $((seconds * 10))); do
    kill -0 "$pid" 2>/dev/null || die "$what exited; see its messages above"
    "$@" 2>/dev/null && return 0
    sleep 0.1
  done
  die "$what did not come up within ${seconds}s"
}

# start_redis DIR [FLAG...]: a private redis-server in the background, only on the Unix
# socket DIR/redis.sock (mode 700), keeping nothing on disk, logging to DIR/redis.log;
# extra FLAGs (e.g. --appendonly yes) override those. Sets redis_pid; returns once
# the socket is there. shared/src/testing.rs and e2e/lib/services.js start theirs with
# the same flags. Adds its pid to the caller's `pids` (the processes its cleanup stops).
start_redis() {
  local dir=$1; shift
  rm -f "$dir/redis.sock"
  redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 \
    --save "" --appendonly no --dir "$dir" --logfile "$dir/redis.log" "$@" &
  redis_pid=$!
  pids+=("$redis_pid")
  wait_while_running "redis-server (log: $dir/redis.log)" "$redis_pid" 10 test -S "$dir/redis.sock"
}

# stats_total BASE_URL: the consumer's /api/stats total.
stats_total() {
  local json
  json=$(curl -fsS "$1/api/stats") || die "GET $1/api/stats failed"
  [[ $json =~ \"total\":([0-9]+) ]] || die "GET $1/api/stats gave no total: $json"
  printf '%s\n' "${BASH_REMATCH[1]}"
}

# redis_info SOCKET FIELD: one field of the private redis-server's INFO, e.g. used_memory.
redis_info() {
  redis-cli -s "$1" info | tr -d '\r' | sed -n "s/^$2://p"
}

# rss_kib PID: the resident memory of a process, in KiB.
rss_kib() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# redis_cpu_us REDIS-CLI-ARG...: a redis-server's INFO cpu used_cpu_user + used_cpu_sys,
# in microseconds (e.g. redis_cpu_us -s DIR/redis.sock, redis_cpu_us -p 30001).
redis_cpu_us() {
  redis-cli "$@" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ { t += $2 } END { printf "%.0f", t * 1e6 }'
}
