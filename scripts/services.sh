#!/usr/bin/env bash
# services.sh start|stop|status|env|clean|pg-stop|pg-start DIR
#
# A private PostgreSQL cluster and a private Redis owned by a build tree, for
# the tests, the demo and the benchmarks. Both listen on 127.0.0.1 only, on
# free ports chosen at start and remembered under DIR; the system's own
# PostgreSQL and Redis services are never used or touched.
#
#   start   initialise (first time) and start both; a no-op when running
#   stop    stop both; a no-op when stopped
#   status  exit 0 when both are running
#   clean   stop both and delete their data (and the mktemp directory below)
#   pg-stop, pg-start
#           stop or start PostgreSQL alone, on the same port (a fault test's
#           database restart)
#   env     print `export` lines for CRIER_TEST_DATABASE_URL and
#           CRIER_TEST_REDIS_URL (the cluster's superuser role is `crier`,
#           trusted on 127.0.0.1 only)
#
# PostgreSQL refuses to run as root, so when we are root the cluster belongs to
# the `postgres` user. If that user cannot reach DIR (a tree under a private
# home directory), the cluster lives in a directory made with mktemp instead,
# recorded in DIR/pg.root.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop|status|env|clean|pg-stop|pg-start DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
redis_dir=$dir/redis

# Debian's python3, used only to ask the kernel for a free port.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

pg_bindir() {
    local d
    d=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then
        echo "$d"
        return
    fi
    # The newest installed server wins.
    for d in $(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V -r); do
        if [ -x "$d/initdb" ]; then
            echo "$d"
            return
        fi
    done
    echo "services: no PostgreSQL server binaries (initdb) found; run scripts/deps.sh" >&2
    exit 1
}

free_port() {
    "$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

is_root() {
    [ "$(id -u)" -eq 0 ]
}

# Runs a PostgreSQL server command as the cluster's owner, from / because
# the postgres user may not be allowed into the current directory (every path
# given is absolute).
as_pg() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Where the cluster lives: DIR/pg, or the directory recorded in DIR/pg.root.
pg_root() {
    if [ -f "$dir/pg.root" ]; then
        cat "$dir/pg.root"
    else
        echo "$dir/pg"
    fi
}

pg_choose_root() {
    if [ -f "$dir/pg.root" ] && [ -d "$(cat "$dir/pg.root")" ]; then
        return
    fi
    rm -f "$dir/pg.root"
    if is_root && ! as_pg test -x "$dir"; then
        local r
        r=$(mktemp -d -t crier-pg.XXXXXX)
        chown postgres:postgres "$r"
        echo "$r" >"$dir/pg.root"
    fi
}

pg_running() {
    local root
    root=$(pg_root)
    [ -f "$root/data/PG_VERSION" ] && [ -f "$root/port" ] &&
        as_pg "$(pg_bindir)/pg_ctl" status -D "$root/data" >/dev/null 2>&1
}

pg_start() {
    local bin root port
    bin=$(pg_bindir)
    pg_choose_root
    root=$(pg_root)
    if pg_running; then
        return
    fi
    if is_root; then
        install -d -m 0700 -o postgres -g postgres "$root" "$root/sock"
    else
        install -d -m 0700 "$root" "$root/sock"
    fi
    if [ ! -f "$root/data/PG_VERSION" ]; then
        rm -rf "$root/data"
        # --no-sync only skips flushing the freshly made files; the server
        # itself runs with fsync on, as the benchmarks compare durable commits.
        as_pg "$bin/initdb" -D "$root/data" -U crier -A trust --no-locale -E UTF8 --no-sync \
            >"$root/initdb.log" 2>&1 || {
            echo "services: initdb failed:" >&2
            tail -n 20 "$root/initdb.log" >&2
            exit 1
        }
        as_pg sh -c "cat >>'$root/data/postgresql.conf'" <<EOF

# crier's private cluster (scripts/services.sh)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$root/sock'
max_connections = 200
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 256MB
log_min_messages = warning
EOF
    fi
    port=$(free_port)
    # a restart of the database alone comes back where its clients look
    if [ "${PG_KEEP_PORT:-0}" = 1 ] && [ -s "$root/port" ]; then
        port=$(cat "$root/port")
    fi
    # A pid file left by a killed server is checked (and ignored when its
    # process is gone) by postgres itself.
    if ! as_pg "$bin/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 \
        -o "-p $port" start >/dev/null; then
        echo "services: PostgreSQL did not start:" >&2
        tail -n 20 "$root/server.log" >&2 || true
        exit 1
    fi
    if is_root; then
        echo "$port" | as_pg sh -c "cat >'$root/port'"
    else
        echo "$port" >"$root/port"
    fi
}

pg_stop() {
    local root
    root=$(pg_root)
    if [ -f "$root/data/PG_VERSION" ] &&
        as_pg "$(pg_bindir)/pg_ctl" status -D "$root/data" >/dev/null 2>&1; then
        as_pg "$(pg_bindir)/pg_ctl" -D "$root/data" -m fast -w -t 60 stop >/dev/null
    fi
    if [ "${PG_KEEP_PORT:-0}" != 1 ]; then
        rm -f "$root/port"
    fi
}

redis_pid() {
    local pid
    [ -f "$redis_dir/redis.pid" ] || return 1
    pid=$(cat "$redis_dir/redis.pid")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q redis-server || return 1
    echo "$pid"
}

redis_running() {
    redis_pid >/dev/null && [ -f "$redis_dir/port" ]
}

redis_start() {
    local port
    if redis_running; then
        return
    fi
    mkdir -p "$redis_dir"
    rm -f "$redis_dir/redis.pid" "$redis_dir/port"
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --dir "$redis_dir" --pidfile "$redis_dir/redis.pid" \
        --logfile "$redis_dir/redis.log"
    for _ in $(seq 1 100); do
        if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
            echo "$port" >"$redis_dir/port"
            return
        fi
        sleep 0.1
    done
    echo "services: Redis did not start:" >&2
    tail -n 20 "$redis_dir/redis.log" >&2 || true
    exit 1
}

redis_stop() {
    local pid
    if pid=$(redis_pid); then
        kill -TERM "$pid"
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "$redis_dir/redis.pid" "$redis_dir/port"
}

print_env() {
    if ! pg_running || ! redis_running; then
        echo "services: not running under $dir (run: $0 start $dir)" >&2
        exit 1
    fi
    echo "export CRIER_TEST_DATABASE_URL=postgresql://crier@127.0.0.1:$(cat "$(pg_root)/port")/postgres"
    echo "export CRIER_TEST_REDIS_URL=redis://127.0.0.1:$(cat "$redis_dir/port")/0"
}

case "$cmd" in
start)
    pg_start
    redis_start
    ;;
stop)
    redis_stop
    pg_stop
    ;;
status)
    pg_running && redis_running
    ;;
pg-stop)
    PG_KEEP_PORT=1 pg_stop
    ;;
pg-start)
    PG_KEEP_PORT=1 pg_start
    ;;
env)
    print_env
    ;;
clean)
    redis_stop
    pg_stop
    rm -rf "$(pg_root)" "$redis_dir"
    rm -f "$dir/pg.root"
    ;;
*)
    usage
    ;;
esac
