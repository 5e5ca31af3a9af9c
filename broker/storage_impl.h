/* storage_impl.h: private to broker/storage_*.c (and tests): the write
 * batch's internals, shared by storage_batch.c (which fills it on the loop
 * thread) and storage_lmdb.c (which replays it into one LMDB write
 * transaction on the committer thread).
 *
 * A batch is a list of operations in put order plus one byte arena that
 * holds everything copied out of raft updates (payloads, snapshot bytes,
 * hard state and snapshot metadata structs). Operations refer to the arena
 * by offset, so the arena may grow by realloc. */
#ifndef TANDEM_BROKER_STORAGE_IMPL_H
#define TANDEM_BROKER_STORAGE_IMPL_H

#include "broker/storage.h"
#include "broker/storage_record.h"

enum storage__op_kind {
    STORAGE__OP_HARD_STATE = 1, /* arena: struct raft_hard_state */
    STORAGE__OP_INSTALL = 2,    /* arena: struct raft_snapshot_meta, data */
    STORAGE__OP_COMPACT = 3,    /* arena: struct raft_snapshot_meta, data */
    STORAGE__OP_TRUNCATE = 4,   /* delete entries >= index */
    STORAGE__OP_ENTRY = 5,      /* append (index, term, type), arena payload;
                                   always right after a TRUNCATE or ENTRY of
                                   the same partition, index consecutive */
    STORAGE__OP_COMMIT = 6,     /* commit hint = index */
};

struct storage__op {
    uint8_t kind; /* enum storage__op_kind */
    uint8_t type; /* ENTRY: enum raft_entry_type */
    uint32_t partition;
    raft_index index;  /* TRUNCATE: first deleted; ENTRY: its index;
                          COMMIT: the hint */
    raft_term term;    /* ENTRY */
    size_t struct_off; /* HARD_STATE, INSTALL, COMPACT: struct in arena */
    size_t data_off;   /* ENTRY payload or snapshot bytes in arena */
    size_t data_len;
};

struct storage_batch {
    uint64_t bytes_max; /* from storage_options */
    uint32_t ops_max;
    struct storage__op *ops;
    uint32_t op_count;
    uint32_t op_cap;
    struct storage__buf arena;
    /* Per partition touched by an append: the log's last (index, term)
     * after this batch; index 0 when a later snapshot install emptied it. */
    struct storage_persisted *persisted;
    size_t persisted_count;
    size_t persisted_cap;
    size_t persisted_hint; /* row of the last lookup */
    bool committed;
};

/* Called by storage_batch_commit() after the transaction committed: drops
 * the rows of partitions emptied by an install and marks b committed. */
void storage__batch_mark_committed(struct storage_batch *b);

/* The limits a new batch copies from its storage. */
void storage__batch_limits(const struct storage *s, uint64_t *bytes_max,
                           uint32_t *ops_max);

#endif /* TANDEM_BROKER_STORAGE_IMPL_H */
