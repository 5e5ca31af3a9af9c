/* fuzz_partition_apply.c: fuzz target for the partition state machine's
 * record decoding (broker/partition.c): arbitrary bytes are applied as
 * committed entries and as snapshot data.
 *
 * Input: byte 0 picks the mode (even: apply the rest as one NORMAL entry,
 * odd: restore the rest as snapshot bytes); then the partition must either
 * accept it or mark itself dead, never crash, and a dead partition must
 * refuse further work. */
#include <stdlib.h>
#include <string.h>

#include "broker/partition.h"
#include "fuzz.h"

static void fuzz_answer(void *data, uint64_t request_id, int status,
                        uint64_t key, const char *message)
{
    (void)data;
    (void)request_id;
    (void)status;
    (void)key;
    (void)message;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct raft_options o;
    struct raft_node *raft;
    struct partition_options po;
    struct partition p;
    struct raft_entry e;
    int rv;

    if (size == 0) {
        return 0;
    }
    raft_options_default(&o, 1);
    if (raft_node_new(&o, &raft) != 0) {
        return 0;
    }
    memset(&po, 0, sizeof(po));
    po.partition_id = 2;
    po.requests_max = 4;
    po.answer = fuzz_answer;
    if (partition_init(&p, &po, raft) != 0) {
        raft_node_free(raft);
        return 0;
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
    return 0;
}
