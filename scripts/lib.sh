# Shared helpers for the scripts in this folder. Source it; do not run it.

# Installs redis-server (and redis-benchmark) from Debian's packages when missing.
ensure_redis() {
  if command -v redis-server >/dev/null 2>&1 && command -v redis-benchmark >/dev/null 2>&1; then
    return 0
  fi
  echo "redis-server not found: installing it with apt-get" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools >/dev/null
}

# Installs Debian packages that are missing (by command name=package pairs).
ensure_packages() {
  local missing=()
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]} with apt-get" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Installs a cargo subcommand from crates.io when it is missing: ensure_cargo_tool CRATE VERSION.
# The first install compiles it (cargo-machete: about 3.5 min on one core); later runs skip it.
ensure_cargo_tool() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "$1 not found: installing $1 $2 with cargo install" >&2
  cargo install --locked --quiet "$1" --version "$2"
}

# Prints a TCP port on 127.0.0.1 that is free right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts a throwaway redis-server on a free port; sets REDIS_PORT and REDIS_PID.
# The caller must call stop_redis (a trap is the usual way).
start_redis() {
  REDIS_DIR=$(mktemp -d)
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" --daemonize no "$@" &
  REDIS_PID=$!
  for _ in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "redis-server did not start; log:" >&2
  cat "$REDIS_DIR/redis.log" >&2
  return 1
}

stop_redis() {
  if [ -n "${REDIS_PID:-}" ]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
  fi
  [ -n "${REDIS_DIR:-}" ] && rm -rf "$REDIS_DIR"
}

# Prints the first port of N consecutive ports on 127.0.0.1 that are free right now, and
# whose cluster bus ports (port + 10000) are free too.
free_port_range() {
  python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randint(20000, 40000)
    socks = []
    try:
        for p in list(range(base, base + n)) + list(range(base + 10000, base + 10000 + n)):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
        print(base)
        break
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
else:
    sys.exit("no free port range found")
PY
}
