#!/usr/bin/env bash
# test_gateway_zbctl.sh: the REAL zbctl (Zeebe 8.4) against Tandem's real
# gateway (gRPC server + broker client) in front of three fake brokers
# (process gateway-fake-cluster): every command below crosses the gRPC
# server, the client's routing and the command API.
#   zbctl deploy            -> partition 1; prints the process
#   zbctl create instance   -> round robin; prints the instance key
#   zbctl activate jobs     -> fan-out over the partitions; the job the
#                              instance made
#   zbctl complete job      -> partition of the job key
#   zbctl fail job          -> partition of the job key
#   zbctl publish message   -> partition of the correlation key
#   zbctl activate jobs with nothing to activate -> long polling ends
#                              with no jobs after --requestTimeout
#
# Usage: test_gateway_zbctl.sh GATEWAY_FAKE_CLUSTER NODE_MODULES_DIR
# Flow: start the process -> read "port=N" (printed once the gateway
# knows every leader) -> run each zbctl with a timeout, check its output
# -> SIGTERM, which must exit 0 (clean close). A missing zbctl FAILS.
set -uo pipefail

cluster=$1
modules=$2
zbctl=$modules/zbctl/bin/zbctl-cli.linux
work=$(mktemp -d "${TMPDIR:-/tmp}/gateway-zbctl.XXXXXX")
pid=
passed=0
failed=0

cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }

if [[ ! -x "$zbctl" ]]; then
    echo "FAIL: zbctl not found at $zbctl: run scripts/setup-deps" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

"$cluster" >"$work/out" 2>"$work/err" &
pid=$!
port=
for _ in $(seq 1 200); do
    port=$(sed -n 's/^port=//p' "$work/out")
    [[ -n "$port" ]] && break
    sleep 0.05
done
if [[ -z "$port" ]]; then
    echo "FAIL: gateway-fake-cluster did not report its port" >&2
    cat "$work/err" >&2
    exit 1
fi
echo "# gateway-fake-cluster: gRPC on 127.0.0.1:$port"
addr=(--insecure --address "127.0.0.1:$port")

# run NAME CMD...: runs zbctl with a timeout into $work/NAME.
run() {
    local name=$1
    shift
    timeout 30 "$zbctl" "$@" "${addr[@]}" >"$work/$name" 2>&1
}

# 1. deploy: the fake deploys one process per resource, its id the
# resource name (the path zbctl sends) without the extension.
printf '<definitions/>\n' >"$work/order.bpmn"
if run deploy deploy "$work/order.bpmn" &&
    grep -q '"bpmnProcessId": *"[^"]*/order"' "$work/deploy" &&
    grep -q '"processDefinitionKey": *"2251799813685348"' "$work/deploy" &&
    grep -q '"key": *"2251799813685347"' "$work/deploy"; then
    ok "zbctl deploy"
else
    cat "$work/deploy"
    not_ok "zbctl deploy"
fi

# 2. create instance: the first of the round robin is partition 1.
if run create create instance order &&
    grep -q '"processInstanceKey": *"2251799813685749"' "$work/create" &&
    grep -q '"bpmnProcessId": *"order"' "$work/create"; then
    ok "zbctl create instance"
else
    cat "$work/create"
    not_ok "zbctl create instance"
fi

# 3. activate jobs: the instance's job on partition 1.
if run activate activate jobs work --maxJobsToActivate 5 \
    --requestTimeout 2s &&
    grep -q '"key": *"2251799813686249"' "$work/activate" &&
    grep -q '"type": *"work"' "$work/activate" &&
    grep -c '"key"' "$work/activate" | grep -qx 1; then
    ok "zbctl activate jobs"
else
    cat "$work/activate"
    not_ok "zbctl activate jobs"
fi

# 4. complete job, 5. fail job: routed by the job key (partition 1).
if run complete complete job 2251799813686249 --variables '{"x":1}' &&
    grep -q 'Completed job with key .2251799813686249.' "$work/complete"; then
    ok "zbctl complete job"
else
    cat "$work/complete"
    not_ok "zbctl complete job"
fi
if run fail fail job 2251799813686249 --retries 2 --errorMessage boom &&
    grep -q 'Failed job with key .2251799813686249. and set remaining retries to .2.' \
        "$work/fail"; then
    ok "zbctl fail job"
else
    cat "$work/fail"
    not_ok "zbctl fail job"
fi

# 6. publish message: correlation key order-42 hashes to partition 1.
if run publish publish message order-paid --correlationKey order-42 &&
    grep -q '"key": *"2251799813685249"' "$work/publish" &&
    grep -q '"tenantId": *"<default>"' "$work/publish"; then
    ok "zbctl publish message"
else
    cat "$work/publish"
    not_ok "zbctl publish message"
fi

# 7. Nothing to activate: long polling ends after requestTimeout, with
# no jobs and no error.
start=$(date +%s%N)
if run empty activate jobs nothing --requestTimeout 1s; then
    elapsed=$((($(date +%s%N) - start) / 1000000))
    if ((elapsed >= 900)) && ! grep -q '"key"' "$work/empty"; then
        ok "zbctl activate jobs long-polls and ends empty (${elapsed} ms)"
    else
        cat "$work/empty"
        not_ok "zbctl activate jobs long-polls and ends empty (${elapsed} ms)"
    fi
else
    cat "$work/empty"
    not_ok "zbctl activate jobs long-polls and ends empty"
fi

kill -TERM "$pid"
if wait "$pid"; then
    ok "gateway-fake-cluster exits 0 on SIGTERM"
else
    cat "$work/err"
    not_ok "gateway-fake-cluster exits 0 on SIGTERM"
fi
pid=

echo "$passed passed, $failed failed"
((failed == 0))
