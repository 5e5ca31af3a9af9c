/* storage_lmdb.c: the LMDB environment behind broker/storage.h: open and
 * close, group commit of write batches, and loading at startup. The only
 * file of the broker that calls LMDB.
 *
 * Commit (committer thread):
 *     batch ops, in put order -> encode records (zstd here, off the loop)
 *     -> one write txn over "meta", "snap" and the "log.<p>" databases
 *     -> mdb_txn_commit: data pages, fdatasync, meta page (O_DSYNC)
 *     -> batch marked committed, persisted (index, term) per partition.
 * Load (startup):
 *     one read txn -> hard state, commit hint, snapshot meta + chunks
 *     (decompressed, CRC-checked), log entries (contiguity-checked) ->
 *     struct storage_state owned by the caller.
 *
 * Why snapshot bytes live in LMDB rather than in files next to the env:
 * an install must atomically replace the snapshot AND delete the whole log
 * (and a compaction must store the snapshot and delete the log prefix),
 * ordered after every earlier entry write. Inside the same write
 * transaction this is free and costs no extra fsync; with files it would
 * need write-temp + fsync + rename + fsync(dir) before the LMDB commit,
 * plus cleanup of orphans after a crash, i.e. three more flushes in the
 * group-commit path. The cost is LMDB's weakness with large values, which
 * we contain by storing snapshots as zstd-compressed chunk records of at
 * most 256 KiB raw (short overflow-page runs), and the batch byte limit
 * bounds how many pages one transaction dirties (MDB_TXN_FULL otherwise).
 * Should snapshots grow past what fits comfortably in one batch, moving
 * them to files is a local change to snapshot_write()/snapshot_read().
 *
 * Log DB handles are opened once and cached (sorted by partition); a
 * handle opened inside a transaction that aborts is dropped from the cache,
 * as LMDB closes it. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "broker/storage_impl.h"

#define STORAGE_MAP_BYTES_DEFAULT (UINT64_C(64) << 30)
#define STORAGE_MAP_BYTES_MIN (UINT64_C(1) << 20)
#define STORAGE_PARTITIONS_MAX_DEFAULT 1024
#define STORAGE_PARTITIONS_MAX_LIMIT (1u << 20)
#define STORAGE_COMPRESS_BYTES_MIN_DEFAULT 512
#define STORAGE_BATCH_BYTES_MAX_DEFAULT (UINT64_C(64) << 20)
#define STORAGE_BATCH_OPS_MAX_DEFAULT 65536
#define STORAGE_PATH_BYTES_MAX 4096

/* A cached handle of a partition's log database. */
struct storage_log {
    uint32_t partition;
    MDB_dbi dbi;
    bool pending; /* opened in the running transaction */
};

struct storage {
    MDB_env *env;
    MDB_dbi meta_dbi;
    MDB_dbi snap_dbi;
    struct storage_options opts;
    struct storage__codec codec;
    struct storage__buf scratch; /* one encoded record at a time */
    struct storage_log *logs;    /* sorted by partition */
    size_t log_count;
    size_t log_cap;
    bool failed; /* a commit failed with an I/O error */
    char errmsg[STORAGE_ERRMSG_BYTES];
};

const char *storage_strerror(int rv)
{
    switch (rv) {
    case 0:
        return "success";
#define STORAGE__ERRNO_TEXT(name, value, text)                                 \
    case (value):                                                              \
        return (text);
        STORAGE_ERRNO_MAP(STORAGE__ERRNO_TEXT)
#undef STORAGE__ERRNO_TEXT
    default:
        return "unknown storage error";
    }
}

void storage_options_default(struct storage_options *opts)
{
    STORAGE_ASSERT(opts != NULL);
    memset(opts, 0, sizeof(*opts));
    opts->map_bytes = STORAGE_MAP_BYTES_DEFAULT;
    opts->partitions_max = STORAGE_PARTITIONS_MAX_DEFAULT;
    opts->compress_bytes_min = STORAGE_COMPRESS_BYTES_MIN_DEFAULT;
    opts->compress_level = 1;
    opts->batch_bytes_max = STORAGE_BATCH_BYTES_MAX_DEFAULT;
    opts->batch_ops_max = STORAGE_BATCH_OPS_MAX_DEFAULT;
}

const char *storage_errmsg(const struct storage *s)
{
    STORAGE_ASSERT(s != NULL);
    return s->errmsg;
}

void storage__batch_limits(const struct storage *s, uint64_t *bytes_max,
                           uint32_t *ops_max)
{
    STORAGE_ASSERT(s != NULL);
    *bytes_max = s->opts.batch_bytes_max;
    *ops_max = s->opts.batch_ops_max;
}

/* ------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int
storage_fail(struct storage *s, int rv, const char *fmt, ...)
{
    va_list ap;

    STORAGE_ASSERT(rv < 0);
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
    va_end(ap);
    return rv;
}

/* Translates an LMDB (or errno) code into a storage code at the call
 * site, with context. */
static int lmdb_code(int rc)
{
    switch (rc) {
    case MDB_MAP_FULL:
        return STORAGE_E_FULL;
    case MDB_TXN_FULL:
    case MDB_DBS_FULL:
        return STORAGE_E_TOO_BIG;
    case ENOMEM:
        return STORAGE_E_NOMEM;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_BAD_VALSIZE:
        return STORAGE_E_CORRUPT;
    default:
        return STORAGE_E_IO;
    }
}

static int lmdb_fail(struct storage *s, int rc, const char *what,
                     uint32_t partition)
{
    const char *hint = "";

    STORAGE_ASSERT(rc != 0);
    if (rc == MDB_MAP_FULL) {
        hint = "; raise storage_options.map_bytes";
    } else if (rc == MDB_DBS_FULL) {
        hint = "; raise storage_options.partitions_max";
    } else if (rc == MDB_TXN_FULL) {
        hint = "; commit smaller batches";
    }
    return storage_fail(s, lmdb_code(rc), "%s (partition %" PRIu32 "): %s%s",
                        what, partition, mdb_strerror(rc), hint);
}

/* ------------------------------------------------------------------------
 * Log database handles
 * --------------------------------------------------------------------- */

/* Index of the first cached log with partition >= p. */
static size_t log_search(const struct storage *s, uint32_t partition)
{
    size_t lo = 0;
    size_t hi = s->log_count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->logs[mid].partition < partition) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Sets *dbi to the partition's log database. Returns 0, 1 if it does not
 * exist and create is false, or a negative error (errmsg set). */
static int log_dbi(struct storage *s, MDB_txn *txn, uint32_t partition,
                   bool create, MDB_dbi *dbi)
{
    char name[32];
    size_t at = log_search(s, partition);
    MDB_dbi handle;
    int rc;

    if (at < s->log_count && s->logs[at].partition == partition) {
        *dbi = s->logs[at].dbi;
        return 0;
    }
    if (s->log_count == s->log_cap) {
        size_t cap = s->log_cap < 16 ? 16 : s->log_cap * 2;
        struct storage_log *logs = realloc(s->logs, cap * sizeof(*logs));
        if (logs == NULL) {
            return storage_fail(s, STORAGE_E_NOMEM, "log handle cache");
        }
        s->logs = logs;
        s->log_cap = cap;
    }
    snprintf(name, sizeof(name), "log.%" PRIu32, partition);
    rc = mdb_dbi_open(txn, name, create ? MDB_CREATE : 0, &handle);
    if (rc == MDB_NOTFOUND && !create) {
        return 1;
    }
    if (rc != 0) {
        return lmdb_fail(s, rc, "open log database", partition);
    }
    memmove(&s->logs[at + 1], &s->logs[at],
            (s->log_count - at) * sizeof(*s->logs));
    s->logs[at].partition = partition;
    s->logs[at].dbi = handle;
    s->logs[at].pending = true;
    s->log_count++;
    *dbi = handle;
    return 0;
}

/* After the transaction ended: keep (committed) or drop (aborted) the
 * handles it opened. */
static void log_settle(struct storage *s, bool committed)
{
    size_t kept = 0;

    for (size_t i = 0; i < s->log_count; i++) {
        if (s->logs[i].pending && !committed) {
            continue;
        }
        s->logs[i].pending = false;
        s->logs[kept++] = s->logs[i];
    }
    s->log_count = kept;
}

/* ------------------------------------------------------------------------
 * Open and close
 * --------------------------------------------------------------------- */

static int options_check(const struct storage_options *o)
{
    if (o->map_bytes < STORAGE_MAP_BYTES_MIN || o->map_bytes > SIZE_MAX ||
        o->partitions_max == 0 ||
        o->partitions_max > STORAGE_PARTITIONS_MAX_LIMIT ||
        o->batch_bytes_max == 0 || o->batch_bytes_max > SIZE_MAX / 2 ||
        o->batch_ops_max == 0 || o->compress_level < ZSTD_minCLevel() ||
        o->compress_level > ZSTD_maxCLevel()) {
        return STORAGE_E_INVALID;
    }
    return 0;
}

static int dir_make(const char *path)
{
    struct stat st;

    if (mkdir(path, 0750) == 0) {
        return 0;
    }
    if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        return 0;
    }
    return -1;
}

/* Opens "meta" and "snap" and checks or writes the format stamp. */
static int env_prepare(struct storage *s)
{
    const uint8_t format_key[STORAGE__KEY_FORMAT_BYTES] = {0};
    MDB_val key = {sizeof(format_key), (void *)format_key};
    MDB_val val;
    MDB_txn *txn;
    const char *why = "";
    uint32_t format;
    int rv = 0;
    int rc;

    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        return lmdb_fail(s, rc, "begin setup transaction", 0);
    }
    rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta_dbi);
    if (rc == 0) {
        rc = mdb_dbi_open(txn, "snap", MDB_CREATE, &s->snap_dbi);
    }
    if (rc != 0) {
        rv = lmdb_fail(s, rc, "open meta/snap databases", 0);
        goto err_after_txn;
    }
    rc = mdb_get(txn, s->meta_dbi, &key, &val);
    if (rc == MDB_NOTFOUND) {
        rv = storage__format_encode(&s->scratch);
        if (rv != 0) {
            storage_fail(s, rv, "encode format stamp");
            goto err_after_txn;
        }
        val.mv_data = s->scratch.base;
        val.mv_size = s->scratch.len;
        rc = mdb_put(txn, s->meta_dbi, &key, &val, 0);
    } else if (rc == 0) {
        if (storage__format_decode(val.mv_data, val.mv_size, &format, &why) !=
            0) {
            rv = storage_fail(s, STORAGE_E_CORRUPT, "format stamp: %s", why);
            goto err_after_txn;
        }
        if (format != STORAGE__FORMAT) {
            rv = storage_fail(s, STORAGE_E_CORRUPT,
                              "unsupported storage format %" PRIu32
                              " (this build reads %d)",
                              format, STORAGE__FORMAT);
            goto err_after_txn;
        }
    }
    if (rc != 0) {
        rv = lmdb_fail(s, rc, "format stamp", 0);
        goto err_after_txn;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        return lmdb_fail(s, rc, "commit setup transaction", 0);
    }
    return 0;

err_after_txn:
    mdb_txn_abort(txn);
    return rv;
}

int storage_open_ex(const char *dir, const struct storage_options *opts,
                    struct storage **out, char *errbuf)
{
    char path[STORAGE_PATH_BYTES_MAX];
    struct storage *s;
    int dead = 0;
    int rv;
    int rc;

    if (errbuf != NULL) {
        errbuf[0] = '\0';
    }
    if (dir == NULL || out == NULL) {
        return STORAGE_E_INVALID;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return STORAGE_E_NOMEM;
    }
    if (opts != NULL) {
        s->opts = *opts;
    } else {
        storage_options_default(&s->opts);
    }
    if (options_check(&s->opts) != 0) {
        rv = storage_fail(s, STORAGE_E_INVALID, "invalid storage options");
        goto err_after_alloc;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/raft", dir) >= sizeof(path)) {
        rv = storage_fail(s, STORAGE_E_INVALID, "data directory path too long");
        goto err_after_alloc;
    }
    if (dir_make(dir) != 0 || dir_make(path) != 0) {
        rv = storage_fail(s, STORAGE_E_IO, "create %s: %s", path,
                          strerror(errno));
        goto err_after_alloc;
    }
    s->codec.cctx = ZSTD_createCCtx();
    s->codec.dctx = ZSTD_createDCtx();
    s->codec.level = s->opts.compress_level;
    s->codec.compress_bytes_min = s->opts.compress_bytes_min;
    if (s->codec.cctx == NULL || s->codec.dctx == NULL) {
        rv = storage_fail(s, STORAGE_E_NOMEM, "zstd contexts");
        goto err_after_zstd;
    }
    rc = mdb_env_create(&s->env);
    if (rc != 0) {
        rv = lmdb_fail(s, rc, "mdb_env_create", 0);
        goto err_after_zstd;
    }
    rc = mdb_env_set_mapsize(s->env, (size_t)s->opts.map_bytes);
    if (rc == 0) {
        rc = mdb_env_set_maxdbs(s->env, (MDB_dbi)s->opts.partitions_max + 2);
    }
    if (rc != 0) {
        rv = lmdb_fail(s, rc, "configure environment", 0);
        goto err_after_env;
    }
    /* MDB_NOTLS: read slots belong to transactions, not threads, so a load
     * and a commit may come from different (pool) threads. No NOSYNC, no
     * NOMETASYNC, no WRITEMAP: see "Durability" in storage.h. */
    rc = mdb_env_open(s->env, path, MDB_NOTLS, 0640);
    if (rc != 0) {
        rv = lmdb_fail(s, rc, "open environment", 0);
        goto err_after_env;
    }
    /* Free reader slots of dead processes (a killed broker), or their
     * snapshots would keep freed pages from being reused. */
    mdb_reader_check(s->env, &dead);
    rv = env_prepare(s);
    if (rv != 0) {
        goto err_after_env;
    }
    *out = s;
    return 0;

err_after_env:
    mdb_env_close(s->env);
err_after_zstd:
    ZSTD_freeCCtx(s->codec.cctx);
    ZSTD_freeDCtx(s->codec.dctx);
err_after_alloc:
    if (errbuf != NULL) {
        snprintf(errbuf, STORAGE_ERRMSG_BYTES, "%s", s->errmsg);
    }
    storage__buf_free(&s->scratch);
    free(s);
    return rv;
}

int storage_open(const char *dir, const struct storage_options *opts,
                 struct storage **out)
{
    return storage_open_ex(dir, opts, out, NULL);
}

void storage_close(struct storage *s)
{
    if (s == NULL) {
        return;
    }
    STORAGE_ASSERT(s->env != NULL);
    mdb_env_close(s->env);
    ZSTD_freeCCtx(s->codec.cctx);
    ZSTD_freeDCtx(s->codec.dctx);
    storage__buf_free(&s->scratch);
    free(s->logs);
    free(s);
}

/* ------------------------------------------------------------------------
 * Commit: replaying a batch into one write transaction
 * --------------------------------------------------------------------- */

/* State carried across the operations of one commit: the cursor of the
 * partition whose entries are being appended. */
struct commit_run {
    MDB_txn *txn;
    MDB_cursor *cursor; /* on the log of partition, or NULL */
    uint32_t partition;
    raft_index next; /* index the next ENTRY must have */
};

static void run_end(struct commit_run *run)
{
    if (run->cursor != NULL) {
        mdb_cursor_close(run->cursor);
        run->cursor = NULL;
    }
}

static int meta_put(struct storage *s, MDB_txn *txn, uint32_t partition,
                    uint8_t kind, const char *what)
{
    uint8_t k[STORAGE__KEY_META_BYTES];
    MDB_val key = {sizeof(k), k};
    MDB_val val = {s->scratch.len, s->scratch.base};
    int rc;

    storage__key_meta(partition, kind, k);
    rc = mdb_put(txn, s->meta_dbi, &key, &val, 0);
    if (rc != 0) {
        return lmdb_fail(s, rc, what, partition);
    }
    return 0;
}

/* Deletes every snapshot chunk of partition. */
static int chunks_drop(struct storage *s, MDB_txn *txn, uint32_t partition)
{
    uint8_t k[STORAGE__KEY_CHUNK_BYTES];
    MDB_val key = {sizeof(k), k};
    MDB_val val;
    MDB_cursor *cur;
    int rc;

    storage__key_chunk(partition, 0, k);
    rc = mdb_cursor_open(txn, s->snap_dbi, &cur);
    if (rc != 0) {
        return lmdb_fail(s, rc, "open snapshot cursor", partition);
    }
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    while (rc == 0 && key.mv_size == STORAGE__KEY_CHUNK_BYTES &&
           memcmp(key.mv_data, k, 4) == 0) {
        rc = mdb_cursor_del(cur, 0);
        if (rc == 0) {
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
        }
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return lmdb_fail(s, rc, "delete snapshot chunks", partition);
    }
    return 0;
}

/* Replaces the partition's snapshot: chunks, then the metadata record. */
static int snapshot_write(struct storage *s, MDB_txn *txn, uint32_t partition,
                          const struct raft_snapshot_meta *meta,
                          const uint8_t *data, size_t len)
{
    struct storage__snapshot_record rec;
    int rv;

    rv = chunks_drop(s, txn, partition);
    if (rv != 0) {
        return rv;
    }
    memset(&rec, 0, sizeof(rec));
    rec.meta = *meta;
    rec.data_len = len;
    rec.data_crc = storage__crc32c(0, data, len);
    rec.chunk_bytes = STORAGE__CHUNK_BYTES;
    rec.chunk_count = (uint32_t)(len / STORAGE__CHUNK_BYTES +
                                 (len % STORAGE__CHUNK_BYTES != 0 ? 1 : 0));
    for (uint32_t i = 0; i < rec.chunk_count; i++) {
        uint8_t k[STORAGE__KEY_CHUNK_BYTES];
        size_t off = (size_t)i * STORAGE__CHUNK_BYTES;
        size_t n =
            len - off < STORAGE__CHUNK_BYTES ? len - off : STORAGE__CHUNK_BYTES;
        MDB_val key = {sizeof(k), k};
        MDB_val val;
        int rc;

        rv = storage__chunk_encode(&s->codec, partition, i, data + off, n,
                                   &s->scratch);
        if (rv != 0) {
            return storage_fail(s, rv, "encode snapshot chunk");
        }
        storage__key_chunk(partition, i, k);
        val.mv_size = s->scratch.len;
        val.mv_data = s->scratch.base;
        rc = mdb_put(txn, s->snap_dbi, &key, &val, 0);
        if (rc != 0) {
            return lmdb_fail(s, rc, "write snapshot chunk", partition);
        }
    }
    rv = storage__snapshot_encode(partition, &rec, &s->scratch);
    if (rv != 0) {
        return storage_fail(s, rv, "encode snapshot record");
    }
    return meta_put(s, txn, partition, STORAGE__RECORD_SNAPSHOT,
                    "write snapshot record");
}

/* Deletes log entries: all (upto == 0 means "everything") or those with
 * index <= upto. */
static int log_drop(struct storage *s, MDB_txn *txn, uint32_t partition,
                    raft_index upto)
{
    MDB_cursor *cur;
    MDB_val key;
    MDB_val val;
    MDB_dbi dbi;
    int rv;
    int rc;

    rv = log_dbi(s, txn, partition, true, &dbi);
    if (rv != 0) {
        return rv;
    }
    if (upto == 0) {
        rc = mdb_drop(txn, dbi, 0);
        return rc == 0 ? 0 : lmdb_fail(s, rc, "empty log", partition);
    }
    rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0) {
        return lmdb_fail(s, rc, "open log cursor", partition);
    }
    rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    while (rc == 0) {
        if (key.mv_size != STORAGE__KEY_ENTRY_BYTES) {
            mdb_cursor_close(cur);
            return storage_fail(s, STORAGE_E_CORRUPT,
                                "partition %" PRIu32 ": malformed log key",
                                partition);
        }
        if (storage__key_entry_index(key.mv_data) > upto) {
            break;
        }
        rc = mdb_cursor_del(cur, 0);
        if (rc == 0) {
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
        }
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return lmdb_fail(s, rc, "compact log", partition);
    }
    return 0;
}

/* TRUNCATE: delete entries >= from, check the log then ends at from - 1
 * (or is empty), and leave a cursor for the ENTRY ops that follow. */
static int log_truncate(struct storage *s, struct commit_run *run,
                        uint32_t partition, raft_index from)
{
    MDB_val key;
    MDB_val val;
    MDB_dbi dbi;
    raft_index last;
    int rv;
    int rc;

    STORAGE_ASSERT(run->cursor == NULL);
    STORAGE_ASSERT(from > 0);
    rv = log_dbi(s, run->txn, partition, true, &dbi);
    if (rv != 0) {
        return rv;
    }
    rc = mdb_cursor_open(run->txn, dbi, &run->cursor);
    if (rc != 0) {
        return lmdb_fail(s, rc, "open log cursor", partition);
    }
    run->partition = partition;
    run->next = from;
    rc = mdb_cursor_get(run->cursor, &key, &val, MDB_LAST);
    while (rc == 0) {
        if (key.mv_size != STORAGE__KEY_ENTRY_BYTES) {
            return storage_fail(s, STORAGE_E_CORRUPT,
                                "partition %" PRIu32 ": malformed log key",
                                partition);
        }
        last = storage__key_entry_index(key.mv_data);
        if (last < from) {
            if (last != from - 1) {
                return storage_fail(s, STORAGE_E_INVALID,
                                    "partition %" PRIu32 ": append at %" PRIu64
                                    " would leave a gap after %" PRIu64,
                                    partition, from, last);
            }
            return 0;
        }
        rc = mdb_cursor_del(run->cursor, 0);
        if (rc == 0) {
            rc = mdb_cursor_get(run->cursor, &key, &val, MDB_LAST);
        }
    }
    if (rc != MDB_NOTFOUND) {
        return lmdb_fail(s, rc, "truncate log", partition);
    }
    return 0; /* empty log: the append starts it (after a snapshot) */
}

static int log_append(struct storage *s, struct commit_run *run,
                      const struct storage_batch *b,
                      const struct storage__op *op)
{
    uint8_t k[STORAGE__KEY_ENTRY_BYTES];
    MDB_val key = {sizeof(k), k};
    MDB_val val;
    int rv;
    int rc;

    STORAGE_ASSERT(run->cursor != NULL);
    STORAGE_ASSERT(run->partition == op->partition);
    STORAGE_ASSERT(run->next == op->index);
    STORAGE_ASSERT(op->data_off + op->data_len <= b->arena.len);
    rv = storage__entry_encode(&s->codec, op->index, op->term, op->type,
                               b->arena.base + op->data_off, op->data_len,
                               &s->scratch);
    if (rv != 0) {
        return storage_fail(s, rv, "encode entry %" PRIu64, op->index);
    }
    storage__key_entry(op->index, k);
    val.mv_size = s->scratch.len;
    val.mv_data = s->scratch.base;
    /* Keys arrive in order after the truncation: MDB_APPEND keeps pages
     * full and skips the search. */
    rc = mdb_cursor_put(run->cursor, &key, &val, MDB_APPEND);
    if (rc != 0) {
        return lmdb_fail(s, rc, "append entry", op->partition);
    }
    run->next++;
    return 0;
}

static int commit_op(struct storage *s, struct commit_run *run,
                     const struct storage_batch *b,
                     const struct storage__op *op)
{
    struct raft_snapshot_meta meta;
    struct raft_hard_state hs;
    int rv;

    if (op->kind != STORAGE__OP_ENTRY) {
        run_end(run);
    }
    switch (op->kind) {
    case STORAGE__OP_HARD_STATE:
        memcpy(&hs, b->arena.base + op->struct_off, sizeof(hs));
        rv = storage__hard_state_encode(op->partition, &hs, &s->scratch);
        if (rv != 0) {
            return storage_fail(s, rv, "encode hard state");
        }
        return meta_put(s, run->txn, op->partition, STORAGE__RECORD_HARD_STATE,
                        "write hard state");
    case STORAGE__OP_COMMIT:
        rv = storage__commit_encode(op->partition, op->index, &s->scratch);
        if (rv != 0) {
            return storage_fail(s, rv, "encode commit hint");
        }
        return meta_put(s, run->txn, op->partition, STORAGE__RECORD_COMMIT,
                        "write commit hint");
    case STORAGE__OP_INSTALL:
    case STORAGE__OP_COMPACT:
        memcpy(&meta, b->arena.base + op->struct_off, sizeof(meta));
        STORAGE_ASSERT(meta.index == op->index);
        rv = log_drop(s, run->txn, op->partition,
                      op->kind == STORAGE__OP_INSTALL ? 0 : meta.index);
        if (rv != 0) {
            return rv;
        }
        return snapshot_write(s, run->txn, op->partition, &meta,
                              b->arena.base + op->data_off, op->data_len);
    case STORAGE__OP_TRUNCATE:
        return log_truncate(s, run, op->partition, op->index);
    case STORAGE__OP_ENTRY:
        return log_append(s, run, b, op);
    default:
        STORAGE_ASSERT(false);
        return STORAGE_E_INVALID;
    }
}

int storage_batch_commit(struct storage *s, struct storage_batch *b)
{
    struct commit_run run;
    int rv = 0;
    int rc;

    if (s == NULL || b == NULL) {
        return STORAGE_E_INVALID;
    }
    s->errmsg[0] = '\0';
    if (b->committed) {
        return storage_fail(s, STORAGE_E_INVALID, "batch already committed");
    }
    if (s->failed) {
        return storage_fail(s, STORAGE_E_FAILED,
                            "an earlier commit failed with an I/O error");
    }
    if (b->op_count == 0) {
        storage__batch_mark_committed(b);
        return 0;
    }
    memset(&run, 0, sizeof(run));
    rc = mdb_txn_begin(s->env, NULL, 0, &run.txn);
    if (rc != 0) {
        /* UNTESTED: needs a failing environment (e.g. a dead lock file). */
        rv = lmdb_fail(s, rc, "begin write transaction", 0);
        if (rv == STORAGE_E_IO) {
            s->failed = true;
        }
        return rv;
    }
    for (uint32_t i = 0; i < b->op_count && rv == 0; i++) {
        rv = commit_op(s, &run, b, &b->ops[i]);
    }
    run_end(&run);
    if (rv != 0) {
        mdb_txn_abort(run.txn);
        log_settle(s, false);
        return rv;
    }
    rc = mdb_txn_commit(run.txn);
    if (rc != 0) {
        /* UNTESTED: needs a device that fails fdatasync (EIO). */
        log_settle(s, false);
        rv = lmdb_fail(s, rc, "commit write transaction", 0);
        if (rv == STORAGE_E_IO) {
            s->failed = true; /* durable state unknown: treat as a crash */
        }
        return rv;
    }
    log_settle(s, true);
    storage__batch_mark_committed(b);
    return 0;
}

/* ------------------------------------------------------------------------
 * Load
 * --------------------------------------------------------------------- */

void storage_state_close(struct storage_state *state)
{
    if (state == NULL) {
        return;
    }
    for (size_t i = 0; i < state->entry_count; i++) {
        free((void *)state->entries[i].buf.base);
    }
    free(state->entries);
    free((void *)state->snapshot_data.base);
    memset(state, 0, sizeof(*state));
}

/* Reads the (partition, kind) meta record into *val. Returns 0, 1 if
 * absent, or a negative error. */
static int meta_get(struct storage *s, MDB_txn *txn, uint32_t partition,
                    uint8_t kind, MDB_val *val)
{
    uint8_t k[STORAGE__KEY_META_BYTES];
    MDB_val key = {sizeof(k), k};
    int rc;

    storage__key_meta(partition, kind, k);
    rc = mdb_get(txn, s->meta_dbi, &key, val);
    if (rc == MDB_NOTFOUND) {
        return 1;
    }
    if (rc != 0) {
        return lmdb_fail(s, rc, "read meta record", partition);
    }
    return 0;
}

static int snapshot_read(struct storage *s, MDB_txn *txn, uint32_t partition,
                         struct storage_state *out)
{
    struct storage__snapshot_record rec;
    const char *why = "";
    uint8_t *data = NULL;
    MDB_val val;
    int rv;

    rv = meta_get(s, txn, partition, STORAGE__RECORD_SNAPSHOT, &val);
    if (rv != 0) {
        return rv > 0 ? 0 : rv;
    }
    if (storage__snapshot_decode(partition, val.mv_data, val.mv_size, &rec,
                                 &why) != 0) {
        return storage_fail(s, STORAGE_E_CORRUPT,
                            "partition %" PRIu32 ": snapshot record: %s",
                            partition, why);
    }
    if (rec.data_len > SIZE_MAX) {
        return storage_fail(s, STORAGE_E_CORRUPT,
                            "partition %" PRIu32 ": snapshot too large",
                            partition);
    }
    if (rec.data_len > 0) {
        data = malloc((size_t)rec.data_len);
        if (data == NULL) {
            return storage_fail(s, STORAGE_E_NOMEM, "snapshot bytes");
        }
    }
    for (uint32_t i = 0; i < rec.chunk_count; i++) {
        uint8_t k[STORAGE__KEY_CHUNK_BYTES];
        MDB_val key = {sizeof(k), k};
        struct storage__chunk_view view;
        uint64_t off = (uint64_t)i * rec.chunk_bytes;
        uint64_t n = rec.data_len - off < rec.chunk_bytes ? rec.data_len - off
                                                          : rec.chunk_bytes;
        int rc;

        storage__key_chunk(partition, i, k);
        rc = mdb_get(txn, s->snap_dbi, &key, &val);
        if (rc != 0) {
            rv = rc == MDB_NOTFOUND
                     ? storage_fail(s, STORAGE_E_CORRUPT,
                                    "partition %" PRIu32
                                    ": snapshot chunk %" PRIu32 " missing",
                                    partition, i)
                     : lmdb_fail(s, rc, "read snapshot chunk", partition);
            goto err_after_data;
        }
        rv = storage__chunk_decode(partition, i, val.mv_data, val.mv_size,
                                   &view, &why);
        if (rv == 0 && view.raw_len != n) {
            why = "chunk length does not match the snapshot record";
            rv = STORAGE_E_CORRUPT;
        }
        if (rv == 0) {
            rv = storage__payload_unpack(&s->codec, view.payload,
                                         view.payload_len, view.compressed,
                                         data + off, (size_t)n, &why);
        }
        if (rv != 0) {
            rv = storage_fail(s, STORAGE_E_CORRUPT,
                              "partition %" PRIu32 ": snapshot chunk %" PRIu32
                              ": %s",
                              partition, i, why);
            goto err_after_data;
        }
    }
    if (storage__crc32c(0, data, (size_t)rec.data_len) != rec.data_crc) {
        rv = storage_fail(s, STORAGE_E_CORRUPT,
                          "partition %" PRIu32 ": snapshot checksum mismatch",
                          partition);
        goto err_after_data;
    }
    out->has_snapshot = true;
    out->snapshot = rec.meta;
    out->snapshot_data.base = data;
    out->snapshot_data.len = (size_t)rec.data_len;
    return 0;

err_after_data:
    free(data);
    return rv;
}

static int entries_read(struct storage *s, MDB_txn *txn, uint32_t partition,
                        struct storage_state *out)
{
    const char *why = "";
    MDB_cursor *cur;
    MDB_stat stat;
    MDB_val key;
    MDB_val val;
    MDB_dbi dbi;
    raft_index next;
    int rv;
    int rc;

    rv = log_dbi(s, txn, partition, false, &dbi);
    if (rv != 0) {
        return rv > 0 ? 0 : rv;
    }
    rc = mdb_stat(txn, dbi, &stat);
    if (rc != 0) {
        return lmdb_fail(s, rc, "stat log", partition);
    }
    if (stat.ms_entries == 0) {
        return 0;
    }
    out->entries = calloc(stat.ms_entries, sizeof(*out->entries));
    if (out->entries == NULL) {
        return storage_fail(s, STORAGE_E_NOMEM, "entry array");
    }
    rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0) {
        return lmdb_fail(s, rc, "open log cursor", partition);
    }
    next = out->has_snapshot ? out->snapshot.index + 1 : 1;
    rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct storage__entry_view view;
        struct raft_entry *e;
        raft_index index;
        void *payload = NULL;

        if (key.mv_size != STORAGE__KEY_ENTRY_BYTES ||
            out->entry_count == stat.ms_entries) {
            rv = storage_fail(s, STORAGE_E_CORRUPT,
                              "partition %" PRIu32 ": malformed log key",
                              partition);
            break;
        }
        index = storage__key_entry_index(key.mv_data);
        if (index != next) {
            rv = storage_fail(s, STORAGE_E_CORRUPT,
                              "partition %" PRIu32 ": log has entry %" PRIu64
                              " where %" PRIu64 " was expected%s",
                              partition, index, next,
                              out->entry_count == 0
                                  ? " (first after the snapshot)"
                                  : " (gap)");
            break;
        }
        if (storage__entry_decode(index, val.mv_data, val.mv_size, &view,
                                  &why) != 0) {
            rv = storage_fail(s, STORAGE_E_CORRUPT,
                              "partition %" PRIu32 ": entry %" PRIu64 ": %s",
                              partition, index, why);
            break;
        }
        if (view.raw_len > 0) {
            payload = malloc(view.raw_len);
            if (payload == NULL) {
                rv = storage_fail(s, STORAGE_E_NOMEM, "entry payload");
                break;
            }
        }
        e = &out->entries[out->entry_count++];
        e->index = index;
        e->term = view.term;
        e->type = view.type;
        e->buf.base = payload;
        e->buf.len = view.raw_len;
        if (storage__payload_unpack(&s->codec, view.payload, view.payload_len,
                                    view.compressed, payload, view.raw_len,
                                    &why) != 0) {
            rv = storage_fail(s, STORAGE_E_CORRUPT,
                              "partition %" PRIu32 ": entry %" PRIu64 ": %s",
                              partition, index, why);
            break;
        }
        next++;
    }
    mdb_cursor_close(cur);
    if (rv == 0 && rc != MDB_NOTFOUND) {
        rv = lmdb_fail(s, rc, "read log", partition);
    }
    return rv;
}

int storage_load(struct storage *s, uint32_t partition,
                 struct storage_state *out)
{
    const char *why = "";
    MDB_txn *txn;
    MDB_val val;
    int rv;
    int rc;

    if (s == NULL || out == NULL) {
        return STORAGE_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    s->errmsg[0] = '\0';
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return lmdb_fail(s, rc, "begin read transaction", partition);
    }
    rv = meta_get(s, txn, partition, STORAGE__RECORD_HARD_STATE, &val);
    if (rv == 0) {
        if (storage__hard_state_decode(partition, val.mv_data, val.mv_size,
                                       &out->hard_state, &why) != 0) {
            rv = storage_fail(s, STORAGE_E_CORRUPT,
                              "partition %" PRIu32 ": hard state record: %s",
                              partition, why);
            goto err_after_txn;
        }
        out->has_hard_state = true;
    } else if (rv < 0) {
        goto err_after_txn;
    }
    rv = meta_get(s, txn, partition, STORAGE__RECORD_COMMIT, &val);
    if (rv == 0) {
        if (storage__commit_decode(partition, val.mv_data, val.mv_size,
                                   &out->commit, &why) != 0) {
            rv = storage_fail(s, STORAGE_E_CORRUPT,
                              "partition %" PRIu32 ": commit record: %s",
                              partition, why);
            goto err_after_txn;
        }
    } else if (rv < 0) {
        goto err_after_txn;
    }
    rv = snapshot_read(s, txn, partition, out);
    if (rv != 0) {
        goto err_after_txn;
    }
    rv = entries_read(s, txn, partition, out);
    if (rv != 0) {
        goto err_after_txn;
    }
    /* Commit (not abort) so that a log handle opened here stays valid. */
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        log_settle(s, false);
        storage_state_close(out);
        return lmdb_fail(s, rc, "end read transaction", partition);
    }
    log_settle(s, true);
    return 0;

err_after_txn:
    mdb_txn_abort(txn);
    log_settle(s, false);
    storage_state_close(out);
    return rv;
}
