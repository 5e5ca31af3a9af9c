/* fuzz_partition_apply.c: fuzz target for what a partition does with the
 * bytes of committed entries and snapshots (broker/partition.c and the
 * engine's record decoding and appliers behind it).
 *
 * Input: byte 0 picks the mode (even: apply the rest as one NORMAL entry,
 * odd: restore the rest as snapshot bytes); then the partition must either
 * accept it or mark itself dead, never crash. Each input starts from an
 * empty state directory (removed afterwards), so a crash reproduces from
 * the input alone. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/partition.h"
#include "fuzz.h"

static void fuzz_answer(void *data, uint64_t request_id,
                        const Tandem__Command__Response *resp)
{
    (void)data;
    (void)request_id;
    (void)resp;
}

static char fuzz_dir[64];

static void fuzz_wipe(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/data.mdb", fuzz_dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", fuzz_dir);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct raft_options o;
    struct raft_node *raft;
    struct partition_options po;
    struct partition p;
    struct raft_entry e;
    char err[256];
    int rv;

    if (size == 0) {
        return 0;
    }
    if (fuzz_dir[0] == '\0') {
        snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/tandem-fuzz-apply-%ld",
                 (long)getpid());
    }
    raft_options_default(&o, 1);
    if (raft_node_new(&o, &raft) != 0) {
        return 0;
    }
    memset(&po, 0, sizeof(po));
    po.partition_id = 2;
    po.partitions_count = 3;
    po.state_dir = fuzz_dir;
    po.requests_max = 4;
    po.answer = fuzz_answer;
    if (partition_init(&p, &po, raft, err, sizeof(err)) != 0) {
        raft_node_free(raft);
        fprintf(stderr, "fuzz-partition-apply: %s\n", err);
        abort(); /* the environment must open */
    }
    if (data[0] % 2 == 0) {
        memset(&e, 0, sizeof(e));
        e.index = 7;
        e.term = 1;
        e.type = RAFT_ENTRY_NORMAL;
        e.buf.base = data + 1;
        e.buf.len = size - 1;
        rv = partition_apply(&p, &e, 1);
    } else {
        rv = partition_restore(&p, data + 1, size - 1);
    }
    if (rv != 0 && p.health != PARTITION_DEAD) {
        abort(); /* a rejected input must leave the partition dead */
    }
    if (rv == 0 && p.health != PARTITION_HEALTHY) {
        abort();
    }
    partition_close(&p);
    fuzz_wipe();
    return 0;
}
