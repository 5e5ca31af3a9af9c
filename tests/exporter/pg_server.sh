#!/usr/bin/env bash
# pg_server.sh: starts and stops a throw-away PostgreSQL server for the
# exporter tests (Debian's postgresql; server binaries found by pg_config
# --bindir or under /usr/lib/postgresql/<version>/bin).
#
#   pg_server.sh start DIR PORT   initdb into DIR/data on first use (trust
#                                 auth, superuser "postgres"), then start
#                                 it on 127.0.0.1:PORT, socket in DIR
#   pg_server.sh stop DIR         fast shutdown
#
# PostgreSQL refuses to run as root: as root, DIR is handed to the user
# "nobody" and the server runs as nobody (runuser). Every step is bounded
# by timeout(1).
set -euo pipefail

cmd=${1:?usage: pg_server.sh start DIR PORT | stop DIR}
dir=${2:?missing DIR}

bindir=""
for candidate in "$(pg_config --bindir 2>/dev/null || true)" \
    /usr/lib/postgresql/*/bin; do
    if [[ -n "$candidate" && -x "$candidate/initdb" ]]; then
        bindir=$candidate
    fi
done
if [[ -z "$bindir" ]]; then
    echo "pg_server.sh: no initdb found (install Debian's postgresql)" >&2
    exit 1
fi

as_owner=()
if ((EUID == 0)); then
    chown -R nobody "$dir"
    as_owner=(runuser -u nobody --)
fi

case "$cmd" in
start)
    port=${3:?missing PORT}
    if [[ ! -d "$dir/data" ]]; then
        timeout 60 "${as_owner[@]}" "$bindir/initdb" -D "$dir/data" \
            -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1
    fi
    timeout 60 "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -w -t 30 \
        -l "$dir/server.log" \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" \
        start >/dev/null
    ;;
stop)
    timeout 60 "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -w -t 30 \
        -m fast stop >/dev/null
    ;;
*)
    echo "pg_server.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
