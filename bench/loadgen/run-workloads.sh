#!/bin/sh
# run-workloads.sh: issue 8 workloads 1 and 2 with tandem-load, plus the
# brokers' CPU. For each layout (partitions P in "1 3 8", 3 brokers,
# replication factor 3) it starts a loopback cluster with tandem-local,
# runs tandem-load at 1 and 256 in flight for DURATION seconds, samples
# every broker's utime+stime from /proc/PID/stat before and after the run
# (CPU % of one core), then stops the cluster. One JSON line per run goes
# to OUT (default /tmp/tandem-load-results.jsonl).
#
#   bench/loadgen/run-workloads.sh [BUILD_DIR] [DURATION] [OUT]
set -eu
BUILD=${1:-build}
DURATION=${2:-10}
OUT=${3:-/tmp/tandem-load-results.jsonl}
LOAD=$BUILD/bench/loadgen/tandem-load
TICK=$(getconf CLK_TCK)
: > "$OUT"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for P in ${PARTITIONS:-1 3 8}; do
    DIR=$(mktemp -d /tmp/tandem-load-XXXXXX)
    deploy/local/tandem-local up --dir "$DIR" --brokers 3 --partitions "$P" \
        --replication-factor 3 --bin "$BUILD" > "$DIR/up.log"
    trap 'deploy/local/tandem-local down --dir "$DIR" >/dev/null' EXIT
    . "$DIR/cluster.env"   # shell variables only: not exported
    PIDS="$TANDEM_BROKER_0_PID $TANDEM_BROKER_1_PID $TANDEM_BROKER_2_PID"
    for SPEC in "1 1" "256 2"; do
        set -- $SPEC
        before=""; for p in $PIDS; do before="$before $(ticks "$p")"; done
        t0=$(date +%s.%N)
        "$LOAD" --address "$TANDEM_GATEWAY_ADDRESS" --in-flight "$1" --connections "$2" --duration "$DURATION" \
            --json "$DIR/run.json" > "$DIR/run.txt"
        t1=$(date +%s.%N)
        cpu=""; i=0
        for p in $PIDS; do
            i=$((i + 1)); b=$(echo $before | cut -d' ' -f$i)
            cpu="$cpu $(echo "$(ticks "$p") $b $TICK $t0 $t1" |
                awk '{printf "%.0f", 100*($1-$2)/$3/($5-$4)}')"
        done
        echo "== partitions $P, in flight $1, connections $2, broker CPU %:$cpu"
        cat "$DIR/run.txt"
        sed "s/}\$/,\"partitions\":$P,\"broker_cpu_percent\":\"$(echo $cpu)\"}/" \
            "$DIR/run.json" >> "$OUT"
    done
    deploy/local/tandem-local down --dir "$DIR" > /dev/null
    trap - EXIT
    rm -rf "$DIR"
done
