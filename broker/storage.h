/* storage.h: durable storage of every partition's Raft state in one LMDB
 * environment per broker.
 *
 * Data flow:
 *
 *     loop thread                          storage (worker or writer thread)
 *     -----------                          ---------------------------------
 *     raft_node_step(..., &update)
 *     storage_batch_put_update(batch, p, &update)   (copies what it needs)
 *     ... more partitions, same batch ...
 *     hand the batch to the worker ------> storage_batch_commit(s, batch)
 *                                          one LMDB write transaction and
 *                                          one durable sync for ALL
 *                                          partitions in the batch
 *     <------------------------------------ done
 *     storage_batch_persisted(batch) -> per partition (index, term)
 *     raft_node_step(RAFT_EVENT_PERSISTED {index, term})
 *     storage_batch_reset(batch)
 *
 * At startup, storage_load() returns, per partition, everything
 * raft_node_load() needs: hard state, snapshot metadata and bytes, the
 * entries after the snapshot and the stored commit hint.
 *
 * Layout on disk: `<dir>/raft/` is an LMDB environment directory (not
 * MDB_NOSUBDIR: LMDB keeps data.mdb and lock.mdb in it, so the directory is
 * the unit to back up or delete). It holds the named databases
 *
 *     "meta"        per-partition records (hard state, snapshot metadata,
 *                   commit hint) keyed by (partition, kind), plus the
 *                   format stamp;
 *     "snap"        snapshot bytes in zstd-compressed chunks keyed by
 *                   (partition, chunk number);
 *     "log.<p>"     one per partition p: the Raft log, keyed by the entry
 *                   index as 8-byte big-endian so keys sort numerically and
 *                   appends use MDB_APPEND (pages stay full).
 *
 * The log's first index is not stored on its own: every operation that
 * deletes a prefix (install, compaction) stores the snapshot in the same
 * transaction, so the first index is always snapshot.index + 1 (or 1), and
 * storage_load() checks that the first stored key is exactly that.
 *
 * The record formats are drawn in storage_record.c. Every record carries a
 * version byte and a CRC32C that also covers its key; a record that fails
 * validation makes storage_load() return STORAGE_E_CORRUPT with a message
 * naming the partition and record, never a crash.
 *
 * Durability: LMDB runs with full synchronous commits (neither MDB_NOSYNC
 * nor MDB_NOMETASYNC: each commit flushes the data pages, then writes the
 * meta page with O_DSYNC, two device flushes). A storage_batch_commit() that
 * returned 0 survives kill -9 and power loss on a filesystem and device that
 * honour fsync/fdatasync. MDB_NOMETASYNC would halve the flushes but a crash
 * could undo the last commit, which breaks "PERSISTED means durable"; it is
 * deliberately not offered.
 *
 * Thread safety: a struct storage may be used from any thread, but at most
 * one storage_batch_commit() may run at a time (LMDB has one writer per
 * environment; the broker runs commits on one writer thread or serialised
 * through uv_queue_work), and storage_load() is meant for startup: it must
 * not run concurrently with a commit. A struct storage_batch is used by one
 * thread at a time; the usual pattern is two batches, one being filled on
 * the loop while the other is committed. errmsg describes the last error of
 * the call that failed and is only meaningful right after it.
 */
#ifndef TANDEM_BROKER_STORAGE_H
#define TANDEM_BROKER_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

/* Error codes: zero is success, errors are negative. */
#define STORAGE_ERRNO_MAP(X)                                                   \
    X(NOMEM, -1, "out of memory")                                              \
    X(INVALID, -2, "invalid argument")                                         \
    X(BUSY, -3, "batch is full: commit it, then add the rest")                 \
    X(TOO_BIG, -4, "operation exceeds the batch limits even when empty")       \
    X(CORRUPT, -5, "stored data failed validation")                            \
    X(FULL, -6, "LMDB map is full (raise storage_options.map_bytes)")          \
    X(IO, -7, "I/O error")                                                     \
    X(FAILED, -8, "storage failed earlier and must be closed")

enum storage_errno {
#define STORAGE__ERRNO_ENUM(name, value, text) STORAGE_E_##name = (value),
    STORAGE_ERRNO_MAP(STORAGE__ERRNO_ENUM)
#undef STORAGE__ERRNO_ENUM
};

/* Returns a static, human-readable string for an error code. Never NULL. */
const char *storage_strerror(int rv);

/* The size of the errmsg buffer on a struct storage. */
#define STORAGE_ERRMSG_BYTES 256

struct storage_options {
    uint64_t map_bytes;          /* LMDB map size (address space, sparse
                                    file); default 64 GiB */
    uint32_t partitions_max;     /* log databases the env can hold; default
                                    1024 */
    uint32_t compress_bytes_min; /* entry payloads of at least this many
                                    bytes are tried with zstd and stored
                                    compressed if that saves >= 1/8; 0 turns
                                    entry compression off; default 512 */
    int compress_level;          /* zstd level for entries and snapshots;
                                    default 1 */
    uint64_t batch_bytes_max;    /* bytes a batch may hold (copied payloads,
                                    snapshot data, records); default 64 MiB */
    uint32_t batch_ops_max;      /* operations a batch may hold (each entry
                                    counts as one); default 65536 */
};

/* Fills *opts with the defaults listed above. */
void storage_options_default(struct storage_options *opts);

struct storage; /* opaque */

/* Opens (creating if needed) the storage under data directory dir: creates
 * dir and dir/raft if missing, opens the LMDB environment there, clears
 * stale reader slots and checks (or writes) the format stamp. opts may be
 * NULL for the defaults; it is copied, dir is not kept. On success sets
 * *out (release with storage_close). Returns 0, STORAGE_E_INVALID (NULL
 * arguments, bad options), STORAGE_E_NOMEM, STORAGE_E_IO (directory or
 * LMDB error), STORAGE_E_CORRUPT (bad or unknown format stamp). On failure
 * nothing is left open and *out is untouched. */
int storage_open(const char *dir, const struct storage_options *opts,
                 struct storage **out);

/* Same as storage_open(), and on failure also writes a message into errbuf
 * (STORAGE_ERRMSG_BYTES bytes, NUL-terminated) if errbuf is not NULL. */
int storage_open_ex(const char *dir, const struct storage_options *opts,
                    struct storage **out, char *errbuf);

/* Closes the environment and frees s. No commit or load may be running.
 * NULL is a no-op. Batches created from s must be freed separately (before
 * or after). */
void storage_close(struct storage *s);

/* The message of the last failed call on s (empty if none). Borrowed from
 * s; valid until the next call on s. */
const char *storage_errmsg(const struct storage *s);

/* ------------------------------------------------------------------------
 * Loading (startup)
 * --------------------------------------------------------------------- */

/* Everything stored for one partition, in the shape raft_node_load()
 * takes. Owned by the caller after storage_load(); release with
 * storage_state_close(). */
struct storage_state {
    bool has_hard_state;
    struct raft_hard_state hard_state; /* zeroed if !has_hard_state */
    bool has_snapshot;
    struct raft_snapshot_meta snapshot; /* zeroed if !has_snapshot */
    struct raft_buf snapshot_data;      /* decompressed; owned */
    struct raft_entry *entries; /* contiguous, from snapshot.index + 1 (or
                                   1); payloads owned and decompressed */
    size_t entry_count;
    raft_index commit; /* stored commit hint, 0 if none */
};

/* Reads partition's state into *out (overwritten, no need to initialise).
 * A partition with nothing stored loads as an empty state (all flags false,
 * no entries) and returns 0. Feed the result to raft_node_load() as
 * (has_hard_state ? &hard_state : a zeroed one, has_snapshot ? &snapshot :
 * NULL, snapshot_data, entries, entry_count, commit).
 * Returns 0, STORAGE_E_INVALID, STORAGE_E_NOMEM, STORAGE_E_IO (LMDB
 * error), STORAGE_E_CORRUPT (a record failed validation, or the log is not
 * contiguous or does not start right after the snapshot; errmsg names the
 * partition and the record). On error *out is left empty (nothing to
 * close, though closing it is harmless). Must not run concurrently with
 * storage_batch_commit() on the same s. */
int storage_load(struct storage *s, uint32_t partition,
                 struct storage_state *out);

/* Frees everything *state owns and zeroes it. NULL is a no-op. */
void storage_state_close(struct storage_state *state);

/* ------------------------------------------------------------------------
 * Write batches (group commit across partitions)
 * --------------------------------------------------------------------- */

struct storage_batch; /* opaque */

/* Creates an empty batch whose limits come from s's options. The batch may
 * outlive s only to be freed. Returns 0, STORAGE_E_INVALID,
 * STORAGE_E_NOMEM. */
int storage_batch_new(struct storage *s, struct storage_batch **out);

/* Frees b and everything it copied. NULL is a no-op. */
void storage_batch_free(struct storage_batch *b);

/* Empties b for reuse. Keeps its memory (at most batch_bytes_max of
 * arena), so a steady state allocates nothing. Also required after a
 * successful commit before adding more operations. */
void storage_batch_reset(struct storage_batch *b);

/* Whether b holds no operation. */
bool storage_batch_empty(const struct storage_batch *b);

/* Bytes and operations b holds, for the caller's accounting. */
uint64_t storage_batch_bytes(const struct storage_batch *b);
uint32_t storage_batch_ops(const struct storage_batch *b);

/* Every put below appends operations for one partition to b; at commit
 * they are applied in the order they were put. Each put copies what it
 * needs (update memory dies at the next raft call) and is all-or-nothing:
 * on error b is unchanged. Common errors:
 *   STORAGE_E_INVALID  malformed argument (see each put), or b was
 *                      committed and not reset;
 *   STORAGE_E_BUSY     b is not empty and the put would exceed
 *                      batch_bytes_max or batch_ops_max: commit b, reset
 *                      it, and put again;
 *   STORAGE_E_TOO_BIG  the put alone exceeds the limits;
 *   STORAGE_E_NOMEM. */

/* Sets the partition's hard state (term, vote and the forced configuration
 * fields). INVALID if forced and forced_config fails raft_config_validate.
 */
int storage_batch_put_hard_state(struct storage_batch *b, uint32_t partition,
                                 const struct raft_hard_state *hs);

/* Installs a snapshot received from the leader (RAFT_UPDATE_SNAPSHOT):
 * stores meta and data (data may be empty), and deletes every stored entry
 * of the partition (the log restarts at meta->index + 1). INVALID if
 * meta->index or meta->term is 0 or meta->config is invalid. */
int storage_batch_install_snapshot(struct storage_batch *b, uint32_t partition,
                                   const struct raft_snapshot_meta *meta,
                                   struct raft_buf data);

/* RAFT_UPDATE_ENTRIES: deletes every stored entry with index >=
 * entries[0].index, then appends entries. INVALID if count is 0, indexes
 * are not consecutive, an index or term is 0, or a type is not an enum
 * raft_entry_type. At commit, STORAGE_E_INVALID if entries[0].index would
 * leave a gap after the last stored entry. */
int storage_batch_append(struct storage_batch *b, uint32_t partition,
                         const struct raft_entry *entries, size_t count);

/* Compaction after an application snapshot: stores the snapshot (meta as
 * returned by raft_node_snapshot() after RAFT_EVENT_SNAPSHOT, data the
 * snapshot bytes) and deletes every stored entry with index <= meta->index.
 * Entries after meta->index are kept. Same INVALID cases as
 * storage_batch_install_snapshot(). */
int storage_batch_compact(struct storage_batch *b, uint32_t partition,
                          const struct raft_snapshot_meta *meta,
                          struct raft_buf data);

/* Stores a commit hint (a lower bound of the commit index, handed to
 * raft_node_load on restart). INVALID if commit is 0. */
int storage_batch_put_commit(struct storage_batch *b, uint32_t partition,
                             raft_index commit);

/* Puts everything persistent of one raft update, in the order raft.h
 * demands: snapshot install (RAFT_UPDATE_SNAPSHOT), hard state
 * (RAFT_UPDATE_HARD_STATE), entries (RAFT_UPDATE_ENTRIES). All-or-nothing
 * across the three. An update with none of them puts nothing and returns
 * 0. */
int storage_batch_put_update(struct storage_batch *b, uint32_t partition,
                             const struct raft_update *u);

/* Writes every operation of b in ONE LMDB write transaction and makes it
 * durable with ONE commit (see "Durability" above). Callable from any
 * thread, one commit at a time per s. An empty batch commits trivially
 * (no I/O). On success b is marked committed: storage_batch_persisted()
 * becomes valid and no put is accepted until storage_batch_reset().
 * On error nothing of b was written (the transaction is aborted), b is
 * unchanged and errmsg says why:
 *   STORAGE_E_INVALID  b was already committed, or an append would leave a
 *                      gap in a partition's log;
 *   STORAGE_E_FULL     the LMDB map is full (MDB_MAP_FULL): nothing was
 *                      written; the map needs to be larger;
 *   STORAGE_E_TOO_BIG  the transaction touched too many pages
 *                      (MDB_TXN_FULL): use smaller batches; or a new
 *                      partition exceeds partitions_max (MDB_DBS_FULL);
 *   STORAGE_E_NOMEM;
 *   STORAGE_E_IO       LMDB or the filesystem failed (for example EIO on
 *                      sync). The durable state is unknown: s is marked
 *                      failed and every later commit returns
 *                      STORAGE_E_FAILED; close and reopen (treat it as a
 *                      crash);
 *   STORAGE_E_FAILED   an earlier commit failed with STORAGE_E_IO. */
int storage_batch_commit(struct storage *s, struct storage_batch *b);

/* After a successful commit: the last (index, term) each partition's log
 * ends at because of this batch, for RAFT_EVENT_PERSISTED. Only partitions
 * whose log ends with entries appended in this batch are listed (a
 * partition whose last operation was a snapshot install is not). */
struct storage_persisted {
    uint32_t partition;
    raft_index index;
    raft_term term;
};

/* Returns the persisted table of a committed batch and sets *count; before
 * a successful commit returns NULL and sets *count to 0. Borrowed from b,
 * valid until the next reset or free. */
const struct storage_persisted *
storage_batch_persisted(const struct storage_batch *b, size_t *count);

#endif /* TANDEM_BROKER_STORAGE_H */
