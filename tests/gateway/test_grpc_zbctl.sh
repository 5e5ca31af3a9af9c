#!/usr/bin/env bash
# test_grpc_zbctl.sh: the REAL Zeebe 8.4 clients against Tandem's gRPC
# server (with the fake backend, process grpc-fake-gateway):
#   zbctl status           -> must render the fake topology exactly
#   zbctl publish message  -> succeeds and prints the key
#   zbctl create instance  -> a clean Unimplemented error
#   zeebe-node topology()  -> the same cluster, through grpc-js
#
# Usage: test_grpc_zbctl.sh GRPC_FAKE_GATEWAY NODE_MODULES_DIR
# Flow: start the gateway on 127.0.0.1:0 -> read "port=N" from its
# stdout -> run each client with a timeout, compare -> SIGTERM the
# gateway, which must exit 0 (clean close, no handle left). Missing
# clients FAIL the test (run scripts/setup-deps), never skip.
set -uo pipefail

gateway=$1
modules=$2
zbctl=$modules/zbctl/bin/zbctl-cli.linux
work=$(mktemp -d "${TMPDIR:-/tmp}/grpc-zbctl.XXXXXX")
gw_pid=
passed=0
failed=0

cleanup() {
    if [[ -n "$gw_pid" ]] && kill -0 "$gw_pid" 2>/dev/null; then
        kill -KILL "$gw_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() {
    echo "not ok - $1"
    failed=$((failed + 1))
}

if [[ ! -x "$zbctl" ]]; then
    echo "FAIL: zbctl not found at $zbctl: run scripts/setup-deps" \
        "(installs tests/node_modules with npm)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
if [[ ! -x "$gateway" ]]; then
    echo "FAIL: no gateway binary at $gateway" >&2
    exit 1
fi

"$gateway" --host 127.0.0.1 --port 0 >"$work/gw.out" 2>"$work/gw.err" &
gw_pid=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/^port=//p' "$work/gw.out")
    [[ -n "$port" ]] && break
    sleep 0.05
done
if [[ -z "$port" ]]; then
    echo "FAIL: grpc-fake-gateway did not report its port" >&2
    cat "$work/gw.err" >&2
    exit 1
fi
echo "# grpc-fake-gateway listening on 127.0.0.1:$port"
addr=(--insecure --address "127.0.0.1:$port")

# 1. zbctl status: exactly Zeebe's rendering of the fake topology.
cat >"$work/status.want" <<'WANT'
Cluster size: 3
Partitions count: 3
Replication factor: 3
Gateway version: 8.4.0
Brokers:
  Broker 0 - tandem-0:26501
    Version: 8.4.0
    Partition 1 : Leader, Healthy
    Partition 2 : Follower, Healthy
    Partition 3 : Follower, Healthy
  Broker 1 - tandem-1:26501
    Version: 8.4.0
    Partition 1 : Follower, Healthy
    Partition 2 : Leader, Healthy
    Partition 3 : Follower, Healthy
  Broker 2 - tandem-2:26501
    Version: 8.4.0
    Partition 1 : Follower, Unhealthy
    Partition 2 : Follower, Healthy
    Partition 3 : Leader, Healthy
WANT
if timeout 30 "$zbctl" status "${addr[@]}" >"$work/status.got" 2>&1 &&
    diff -u "$work/status.want" "$work/status.got"; then
    ok "zbctl status renders the topology"
else
    cat "$work/status.got"
    not_ok "zbctl status renders the topology"
fi

# 2. zbctl publish message: succeeds and prints the key.
if timeout 30 "$zbctl" publish message order-paid --correlationKey order-42 \
    "${addr[@]}" >"$work/publish.got" 2>&1 &&
    grep -q '"key": *"2251799813685249"' "$work/publish.got" &&
    grep -q '"tenantId": *"<default>"' "$work/publish.got"; then
    ok "zbctl publish message prints the key"
else
    cat "$work/publish.got"
    not_ok "zbctl publish message prints the key"
fi

# 3. An RPC the backend does not implement: a clean error, exit 1.
timeout 30 "$zbctl" create instance x "${addr[@]}" >"$work/create.got" 2>&1
rc=$?
if [[ $rc -eq 1 ]] &&
    grep -q 'code = Unimplemented desc = CreateProcessInstance is not implemented' \
        "$work/create.got"; then
    ok "zbctl create instance fails with Unimplemented"
else
    echo "exit $rc:"
    cat "$work/create.got"
    not_ok "zbctl create instance fails with Unimplemented"
fi

# 4. zeebe-node (grpc-js, a different HTTP/2 stack): topology().
if [[ -d "$modules/zeebe-node" ]] && command -v node >/dev/null; then
    cat >"$work/topology.js" <<'JS'
const { ZBClient } = require(process.argv[2] + '/zeebe-node');
const zbc = new ZBClient('127.0.0.1:' + process.argv[3], {
    useTLS: false, loglevel: 'NONE', retry: false,
});
zbc.topology().then((t) => {
    console.log(JSON.stringify({ clusterSize: t.clusterSize,
        partitionsCount: t.partitionsCount, brokers: t.brokers.length,
        leaderOf1: t.brokers.find((b) => b.partitions.some(
            (p) => p.partitionId === 1 && p.role === 'LEADER')).nodeId }));
    return zbc.close();
}).then(() => process.exit(0)).catch((e) => {
    console.error('ERROR ' + e.message); process.exit(1);
});
JS
    if timeout 30 node "$work/topology.js" "$modules" "$port" \
        >"$work/node.got" 2>&1 &&
        grep -qx '{"clusterSize":3,"partitionsCount":3,"brokers":3,"leaderOf1":0}' \
            "$work/node.got"; then
        ok "zeebe-node topology()"
    else
        cat "$work/node.got"
        not_ok "zeebe-node topology()"
    fi
else
    echo "FAIL: zeebe-node or node missing: run scripts/setup-deps" >&2
    not_ok "zeebe-node topology()"
fi

# The gateway closes cleanly on SIGTERM.
kill -TERM "$gw_pid"
if wait "$gw_pid"; then
    ok "grpc-fake-gateway exits 0 on SIGTERM"
else
    cat "$work/gw.err"
    not_ok "grpc-fake-gateway exits 0 on SIGTERM"
fi
gw_pid=

echo "$passed passed, $failed failed"
((failed == 0))
