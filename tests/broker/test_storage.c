/* test_storage.c: unit tests of broker/storage (LMDB storage of Raft state).
 *
 * Every test works on real LMDB files in a fresh directory under /tmp
 * (removed in teardown): it writes through batches, commits, usually closes
 * and reopens the storage, then checks what storage_load() returns. The
 * corruption tests open the environment with raw LMDB calls (after closing
 * the storage: one env per process) and flip bytes inside stored values. */
#define _XOPEN_SOURCE 700

#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "broker/storage.h"
#include "broker/storage_record.h"

/* ------------------------------------------------------------------------
 * Fixture
 * --------------------------------------------------------------------- */

struct fixture {
    char dir[64];
    struct storage_options opts;
    struct storage *s;
    struct storage_batch *b;
};

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void fixture_open(struct fixture *f)
{
    char err[STORAGE_ERRMSG_BYTES];
    int rv = storage_open_ex(f->dir, &f->opts, &f->s, err);
    if (rv != 0) {
        fail_msg("storage_open: %s: %s", storage_strerror(rv), err);
    }
    assert_int_equal(storage_batch_new(f->s, &f->b), 0);
}

static void fixture_close(struct fixture *f)
{
    storage_batch_free(f->b);
    storage_close(f->s);
    f->b = NULL;
    f->s = NULL;
}

static void fixture_reopen(struct fixture *f)
{
    fixture_close(f);
    fixture_open(f);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/tandem-storage-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    storage_options_default(&f->opts);
    f->opts.map_bytes = UINT64_C(1) << 30;
    fixture_open(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fixture_close(f);
    assert_int_equal(nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    free(f);
    return 0;
}

/* Commits f->b, failing the test with errmsg on error, and resets it. */
static void commit_ok(struct fixture *f)
{
    int rv = storage_batch_commit(f->s, f->b);
    if (rv != 0) {
        fail_msg("commit: %s: %s", storage_strerror(rv), storage_errmsg(f->s));
    }
}

static void load_ok(struct fixture *f, uint32_t partition,
                    struct storage_state *st)
{
    int rv = storage_load(f->s, partition, st);
    if (rv != 0) {
        fail_msg("load: %s: %s", storage_strerror(rv), storage_errmsg(f->s));
    }
}

/* ------------------------------------------------------------------------
 * Data helpers
 * --------------------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
    x += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

/* Deterministic payload bytes for (partition, index, term): random-looking
 * when !compressible, text-like otherwise. */
static void payload_fill(uint8_t *buf, size_t len, uint32_t partition,
                         raft_index index, raft_term term, bool compressible)
{
    uint64_t seed = mix(((uint64_t)partition << 40) ^ (index << 8) ^ term);
    for (size_t i = 0; i < len; i++) {
        if (compressible) {
            buf[i] = (uint8_t)("tandem log record "[(i + seed) % 18]);
        } else {
            if (i % 8 == 0) {
                seed = mix(seed);
            }
            buf[i] = (uint8_t)(seed >> (8 * (i % 8)));
        }
    }
}

/* A set of entries with owned payloads. */
struct entries {
    struct raft_entry *e;
    size_t count;
};

static size_t entry_len(raft_index index)
{
    static const size_t sizes[] = {0, 1, 17, 128, 700, 4096, 9000};
    return sizes[index % (sizeof(sizes) / sizeof(sizes[0]))];
}

static void entries_make(struct entries *es, uint32_t partition,
                         raft_index first, size_t count, raft_term term,
                         bool compressible)
{
    es->e = calloc(count, sizeof(*es->e));
    assert_non_null(es->e);
    es->count = count;
    for (size_t i = 0; i < count; i++) {
        struct raft_entry *e = &es->e[i];
        size_t len = entry_len(first + i);
        uint8_t *p = len > 0 ? malloc(len) : NULL;
        e->index = first + i;
        e->term = term;
        e->type = (uint8_t)(len == 0 ? RAFT_ENTRY_NOOP : RAFT_ENTRY_NORMAL);
        payload_fill(p, len, partition, e->index, term, compressible);
        e->buf.base = p;
        e->buf.len = len;
    }
}

static void entries_free(struct entries *es)
{
    for (size_t i = 0; i < es->count; i++) {
        free((void *)es->e[i].buf.base);
    }
    free(es->e);
    memset(es, 0, sizeof(*es));
}

static void append_into(struct storage_batch *b, uint32_t partition,
                        raft_index first, size_t count, raft_term term,
                        bool compressible)
{
    struct entries es;
    entries_make(&es, partition, first, count, term, compressible);
    assert_int_equal(storage_batch_append(b, partition, es.e, es.count), 0);
    entries_free(&es);
}

static void append_ok(struct fixture *f, uint32_t partition, raft_index first,
                      size_t count, raft_term term, bool compressible)
{
    append_into(f->b, partition, first, count, term, compressible);
}

/* Checks that st holds entries [first, first + count) of term, built by
 * entries_make with the same arguments, starting at position at. */
static void entries_check(const struct storage_state *st, size_t at,
                          uint32_t partition, raft_index first, size_t count,
                          raft_term term, bool compressible)
{
    struct entries es;
    assert_true(at + count <= st->entry_count);
    entries_make(&es, partition, first, count, term, compressible);
    for (size_t i = 0; i < count; i++) {
        const struct raft_entry *got = &st->entries[at + i];
        const struct raft_entry *want = &es.e[i];
        assert_int_equal(got->index, want->index);
        assert_int_equal(got->term, want->term);
        assert_int_equal(got->type, want->type);
        assert_int_equal(got->buf.len, want->buf.len);
        if (want->buf.len > 0) {
            assert_memory_equal(got->buf.base, want->buf.base, want->buf.len);
        }
    }
    entries_free(&es);
}

static void config_make(struct raft_config *c, unsigned voters)
{
    raft_config_init(c);
    for (unsigned i = 1; i <= voters; i++) {
        assert_int_equal(raft_config_add(c, i, RAFT_VOTER, (uint8_t)i), 0);
    }
}

static struct raft_snapshot_meta snapshot_meta(raft_index index, raft_term term)
{
    struct raft_snapshot_meta m;
    memset(&m, 0, sizeof(m));
    m.index = index;
    m.term = term;
    config_make(&m.config, 3);
    m.config_index = 1;
    m.config_term = 1;
    return m;
}

static uint8_t *bytes_make(size_t len, uint64_t seed, bool compressible)
{
    uint8_t *p = malloc(len);
    assert_non_null(p);
    payload_fill(p, len, 0, seed, 1, compressible);
    return p;
}

/* ------------------------------------------------------------------------
 * Raw LMDB access for corruption tests (storage must be closed)
 * --------------------------------------------------------------------- */

/* Flips the byte at offset `at` (from the end if negative) of the value
 * stored under key in database name. */
static void raw_flip(const char *dir, const char *name, const void *k,
                     size_t klen, long at)
{
    char path[128];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val key = {klen, (void *)k};
    MDB_val val;
    uint8_t *copy;
    size_t off;

    snprintf(path, sizeof(path), "%s/raft", dir);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 64), 0);
    assert_int_equal(mdb_env_set_mapsize(env, (size_t)1 << 30), 0);
    assert_int_equal(mdb_env_open(env, path, 0, 0640), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, name, 0, &dbi), 0);
    assert_int_equal(mdb_get(txn, dbi, &key, &val), 0);
    copy = malloc(val.mv_size);
    assert_non_null(copy);
    memcpy(copy, val.mv_data, val.mv_size);
    off = at >= 0 ? (size_t)at : val.mv_size - (size_t)(-at);
    assert_true(off < val.mv_size);
    copy[off] ^= 0x5A;
    val.mv_data = copy;
    assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    free(copy);
}

/* Reads the raw value of entry index of partition into *view (copied into
 * buf) so tests can see how it was stored. */
static void raw_entry(const char *dir, uint32_t partition, raft_index index,
                      uint8_t *buf, size_t cap,
                      struct storage__entry_view *view)
{
    char path[128];
    char name[32];
    uint8_t k[8];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val key = {sizeof(k), k};
    MDB_val val;

    snprintf(path, sizeof(path), "%s/raft", dir);
    snprintf(name, sizeof(name), "log.%u", (unsigned)partition);
    storage__key_entry(index, k);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 64), 0);
    assert_int_equal(mdb_env_open(env, path, MDB_RDONLY, 0640), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, name, 0, &dbi), 0);
    assert_int_equal(mdb_get(txn, dbi, &key, &val), 0);
    assert_true(val.mv_size <= cap);
    memcpy(buf, val.mv_data, val.mv_size);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    assert_int_equal(storage__entry_decode(index, buf, val.mv_size, view, NULL),
                     0);
}

/* ------------------------------------------------------------------------
 * Tests
 * --------------------------------------------------------------------- */

static void test_open_invalid(void **state)
{
    struct fixture *f = *state;
    struct storage_options o = f->opts;
    struct storage *s = NULL;
    char err[STORAGE_ERRMSG_BYTES];

    assert_int_equal(storage_open(NULL, NULL, &s), STORAGE_E_INVALID);
    assert_int_equal(storage_open(f->dir, NULL, NULL), STORAGE_E_INVALID);
    o.batch_ops_max = 0;
    assert_int_equal(storage_open_ex("/tmp/tandem-never-created", &o, &s, err),
                     STORAGE_E_INVALID);
    assert_non_null(strstr(err, "options"));
    assert_null(s);
    o = f->opts;
    assert_int_equal(storage_open_ex("/proc/tandem-cannot-create", &o, &s, err),
                     STORAGE_E_IO);
    assert_non_null(strstr(err, "create"));
    assert_string_equal(storage_strerror(STORAGE_E_FULL),
                        "LMDB map is full (raise storage_options.map_bytes)");
    assert_string_equal(storage_strerror(12345), "unknown storage error");
}

static void test_empty_partition(void **state)
{
    struct fixture *f = *state;
    struct storage_state st;

    load_ok(f, 77, &st);
    assert_false(st.has_hard_state);
    assert_false(st.has_snapshot);
    assert_int_equal(st.entry_count, 0);
    assert_int_equal(st.commit, 0);
    storage_state_close(&st);
}

static void test_hard_state_roundtrip(void **state)
{
    struct fixture *f = *state;
    struct raft_hard_state hs;
    struct storage_state st;

    memset(&hs, 0, sizeof(hs));
    hs.term = 7;
    hs.vote = 2;
    assert_int_equal(storage_batch_put_hard_state(f->b, 3, &hs), 0);
    commit_ok(f);
    storage_batch_reset(f->b);
    load_ok(f, 3, &st);
    assert_true(st.has_hard_state);
    assert_int_equal(st.hard_state.term, 7);
    assert_int_equal(st.hard_state.vote, 2);
    assert_false(st.hard_state.forced);
    storage_state_close(&st);

    /* A later hard state with a forced configuration replaces it. */
    hs.term = 9;
    hs.vote = 0;
    hs.forced = true;
    hs.forced_term = 9;
    config_make(&hs.forced_config, 2);
    assert_int_equal(storage_batch_put_hard_state(f->b, 3, &hs), 0);
    commit_ok(f);
    fixture_reopen(f);
    load_ok(f, 3, &st);
    assert_true(st.has_hard_state);
    assert_int_equal(st.hard_state.term, 9);
    assert_int_equal(st.hard_state.vote, 0);
    assert_true(st.hard_state.forced);
    assert_int_equal(st.hard_state.forced_term, 9);
    assert_int_equal(st.hard_state.forced_config.count, 2);
    assert_int_equal(st.hard_state.forced_config.members[1].id, 2);
    assert_int_equal(st.hard_state.forced_config.members[1].priority, 2);
    storage_state_close(&st);

    /* An invalid forced configuration is refused at put time. */
    raft_config_init(&hs.forced_config);
    assert_int_equal(storage_batch_put_hard_state(f->b, 3, &hs),
                     STORAGE_E_INVALID);
}

static void test_entries_truncate(void **state)
{
    struct fixture *f = *state;
    const struct storage_persisted *p;
    struct storage_state st;
    size_t n;

    append_ok(f, 1, 1, 10, 1, false);
    assert_null(storage_batch_persisted(f->b, &n));
    assert_int_equal(n, 0);
    commit_ok(f);
    p = storage_batch_persisted(f->b, &n);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].partition, 1);
    assert_int_equal(p[0].index, 10);
    assert_int_equal(p[0].term, 1);
    /* No put on a committed batch until reset. */
    assert_int_equal(storage_batch_put_commit(f->b, 1, 3), STORAGE_E_INVALID);
    storage_batch_reset(f->b);

    /* Conflict at 6: truncate 6..10, append 6..8 of term 2. */
    append_ok(f, 1, 6, 3, 2, false);
    commit_ok(f);
    p = storage_batch_persisted(f->b, &n);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].index, 8);
    assert_int_equal(p[0].term, 2);
    fixture_reopen(f);
    load_ok(f, 1, &st);
    assert_int_equal(st.entry_count, 8);
    entries_check(&st, 0, 1, 1, 5, 1, false);
    entries_check(&st, 5, 1, 6, 3, 2, false);
    storage_state_close(&st);

    /* Two appends for one partition in one batch: the second truncates
     * the first; persisted reports the final end. */
    append_ok(f, 1, 9, 5, 2, false);
    append_ok(f, 1, 8, 2, 3, false);
    commit_ok(f);
    p = storage_batch_persisted(f->b, &n);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].index, 9);
    assert_int_equal(p[0].term, 3);
    storage_batch_reset(f->b);
    load_ok(f, 1, &st);
    assert_int_equal(st.entry_count, 9);
    entries_check(&st, 7, 1, 8, 2, 3, false);
    storage_state_close(&st);
}

static void test_append_gap_refused(void **state)
{
    struct fixture *f = *state;
    struct storage_state st;
    struct raft_entry bad[2];

    append_ok(f, 2, 1, 3, 1, false);
    commit_ok(f);
    storage_batch_reset(f->b);

    /* A gap is found at commit; nothing of the batch is written. */
    append_ok(f, 4, 1, 2, 1, false);
    append_ok(f, 2, 5, 2, 1, false);
    assert_int_equal(storage_batch_commit(f->s, f->b), STORAGE_E_INVALID);
    assert_non_null(strstr(storage_errmsg(f->s), "gap"));
    storage_batch_reset(f->b);
    load_ok(f, 4, &st);
    assert_int_equal(st.entry_count, 0);
    storage_state_close(&st);

    /* The storage stays usable (and the aborted log handle is gone). */
    append_ok(f, 4, 1, 2, 1, false);
    append_ok(f, 2, 4, 1, 1, false);
    commit_ok(f);
    storage_batch_reset(f->b);
    load_ok(f, 2, &st);
    assert_int_equal(st.entry_count, 4);
    storage_state_close(&st);
    load_ok(f, 4, &st);
    assert_int_equal(st.entry_count, 2);
    storage_state_close(&st);

    /* Malformed appends are refused at put time. */
    memset(bad, 0, sizeof(bad));
    bad[0].index = 5;
    bad[0].term = 1;
    bad[0].type = RAFT_ENTRY_NOOP;
    bad[1] = bad[0];
    bad[1].index = 7;
    assert_int_equal(storage_batch_append(f->b, 2, bad, 2), STORAGE_E_INVALID);
    bad[1].index = 6;
    bad[1].type = 9;
    assert_int_equal(storage_batch_append(f->b, 2, bad, 2), STORAGE_E_INVALID);
    bad[1].type = RAFT_ENTRY_NOOP;
    bad[1].term = 0;
    assert_int_equal(storage_batch_append(f->b, 2, bad, 2), STORAGE_E_INVALID);
    assert_int_equal(storage_batch_append(f->b, 2, bad, 0), STORAGE_E_INVALID);
    assert_true(storage_batch_empty(f->b));
}

static void test_snapshot_install(void **state)
{
    struct fixture *f = *state;
    const size_t len = 3 * STORAGE__CHUNK_BYTES + 1234;
    uint8_t *data = bytes_make(len, 42, false);
    struct raft_snapshot_meta meta = snapshot_meta(20, 3);
    struct raft_buf buf = {data, len};
    struct storage_state st;
    size_t n;

    append_ok(f, 5, 1, 10, 1, false);
    commit_ok(f);
    storage_batch_reset(f->b);

    assert_int_equal(storage_batch_install_snapshot(f->b, 5, &meta, buf), 0);
    commit_ok(f);
    assert_null(storage_batch_persisted(f->b, &n));
    assert_int_equal(n, 0);
    fixture_reopen(f);
    load_ok(f, 5, &st);
    assert_true(st.has_snapshot);
    assert_int_equal(st.snapshot.index, 20);
    assert_int_equal(st.snapshot.term, 3);
    assert_int_equal(st.snapshot.config.count, 3);
    assert_int_equal(st.snapshot.config_index, 1);
    assert_int_equal(st.snapshot_data.len, len);
    assert_memory_equal(st.snapshot_data.base, data, len);
    assert_int_equal(st.entry_count, 0);
    storage_state_close(&st);

    /* The log restarts after the snapshot. Appending and then installing in
     * the same batch leaves nothing to report as persisted. */
    append_ok(f, 5, 21, 5, 3, false);
    commit_ok(f);
    storage_batch_reset(f->b);
    load_ok(f, 5, &st);
    assert_int_equal(st.entry_count, 5);
    entries_check(&st, 0, 5, 21, 5, 3, false);
    storage_state_close(&st);

    append_ok(f, 5, 26, 2, 3, false);
    meta = snapshot_meta(40, 4);
    buf.len = 10; /* a much smaller snapshot: old chunks must go */
    assert_int_equal(storage_batch_install_snapshot(f->b, 5, &meta, buf), 0);
    commit_ok(f);
    assert_null(storage_batch_persisted(f->b, &n));
    storage_batch_reset(f->b);
    load_ok(f, 5, &st);
    assert_int_equal(st.snapshot.index, 40);
    assert_int_equal(st.snapshot_data.len, 10);
    assert_memory_equal(st.snapshot_data.base, data, 10);
    assert_int_equal(st.entry_count, 0);
    storage_state_close(&st);

    /* Empty snapshot data is allowed. */
    meta = snapshot_meta(41, 4);
    buf.len = 0;
    assert_int_equal(storage_batch_install_snapshot(f->b, 5, &meta, buf), 0);
    commit_ok(f);
    storage_batch_reset(f->b);
    load_ok(f, 5, &st);
    assert_int_equal(st.snapshot.index, 41);
    assert_int_equal(st.snapshot_data.len, 0);
    storage_state_close(&st);

    meta.index = 0;
    assert_int_equal(storage_batch_install_snapshot(f->b, 5, &meta, buf),
                     STORAGE_E_INVALID);
    free(data);
}

static void test_compact(void **state)
{
    struct fixture *f = *state;
    const size_t len = 2 * STORAGE__CHUNK_BYTES;
    uint8_t *data = bytes_make(len, 7, true);
    struct raft_snapshot_meta meta = snapshot_meta(10, 1);
    struct raft_buf buf = {data, len};
    struct storage_state st;

    append_ok(f, 9, 1, 20, 1, true);
    commit_ok(f);
    storage_batch_reset(f->b);

    assert_int_equal(storage_batch_compact(f->b, 9, &meta, buf), 0);
    commit_ok(f);
    storage_batch_reset(f->b);
    fixture_reopen(f);
    load_ok(f, 9, &st);
    assert_true(st.has_snapshot);
    assert_int_equal(st.snapshot.index, 10);
    assert_int_equal(st.snapshot_data.len, len);
    assert_memory_equal(st.snapshot_data.base, data, len);
    assert_int_equal(st.entry_count, 10);
    entries_check(&st, 0, 9, 11, 10, 1, true);
    storage_state_close(&st);

    /* Compact and append in one batch. */
    meta = snapshot_meta(15, 1);
    buf.len = 100;
    assert_int_equal(storage_batch_compact(f->b, 9, &meta, buf), 0);
    append_ok(f, 9, 21, 3, 2, true);
    commit_ok(f);
    storage_batch_reset(f->b);
    load_ok(f, 9, &st);
    assert_int_equal(st.snapshot.index, 15);
    assert_int_equal(st.snapshot_data.len, 100);
    assert_int_equal(st.entry_count, 8);
    entries_check(&st, 0, 9, 16, 5, 1, true);
    entries_check(&st, 5, 9, 21, 3, 2, true);
    storage_state_close(&st);
    free(data);
}

static void test_multi_partition_batch(void **state)
{
    struct fixture *f = *state;
    const struct storage_persisted *p;
    struct storage_state st;
    size_t n;

    for (uint32_t part = 0; part < 8; part++) {
        struct raft_hard_state hs;
        memset(&hs, 0, sizeof(hs));
        hs.term = part + 1;
        hs.vote = part % 3;
        assert_int_equal(storage_batch_put_hard_state(f->b, part * 10, &hs), 0);
        append_ok(f, part * 10, 1, 5 + part, part + 1, part % 2 == 0);
        assert_int_equal(storage_batch_put_commit(f->b, part * 10, 2 + part),
                         0);
    }
    /* A second append to partition 0 after the others: still one row. */
    append_ok(f, 0, 6, 2, 1, true);
    commit_ok(f);
    p = storage_batch_persisted(f->b, &n);
    assert_int_equal(n, 8);
    for (uint32_t part = 0; part < 8; part++) {
        assert_int_equal(p[part].partition, part * 10);
        assert_int_equal(p[part].index, part == 0 ? 7 : 5 + part);
        assert_int_equal(p[part].term, part + 1);
    }
    fixture_reopen(f);
    for (uint32_t part = 0; part < 8; part++) {
        load_ok(f, part * 10, &st);
        assert_true(st.has_hard_state);
        assert_int_equal(st.hard_state.term, part + 1);
        assert_int_equal(st.hard_state.vote, part % 3);
        assert_int_equal(st.commit, 2 + part);
        assert_int_equal(st.entry_count, part == 0 ? 7 : 5 + part);
        entries_check(&st, 0, part * 10, 1, part == 0 ? 5 : 5 + part, part + 1,
                      part % 2 == 0);
        storage_state_close(&st);
    }
}

static void test_put_update(void **state)
{
    struct fixture *f = *state;
    struct raft_snapshot_meta meta = snapshot_meta(30, 2);
    struct raft_update u;
    struct entries es;
    struct storage_state st;
    const struct storage_persisted *p;
    size_t n;

    entries_make(&es, 4, 31, 4, 3, false);
    memset(&u, 0, sizeof(u));
    u.flags = RAFT_UPDATE_SNAPSHOT | RAFT_UPDATE_HARD_STATE |
              RAFT_UPDATE_ENTRIES | RAFT_UPDATE_MESSAGES;
    u.snapshot = &meta;
    u.snapshot_data.base = "snap";
    u.snapshot_data.len = 4;
    u.hard_state.term = 3;
    u.hard_state.vote = 1;
    u.entries = es.e;
    u.entry_count = es.count;
    assert_int_equal(storage_batch_put_update(f->b, 4, &u), 0);
    assert_int_equal(storage_batch_ops(f->b), 1 + 1 + 1 + 4);
    /* An update with nothing persistent puts nothing. */
    u.flags = RAFT_UPDATE_MESSAGES | RAFT_UPDATE_COMMITTED;
    assert_int_equal(storage_batch_put_update(f->b, 4, &u), 0);
    assert_int_equal(storage_batch_ops(f->b), 7);
    commit_ok(f);
    p = storage_batch_persisted(f->b, &n);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].index, 34);
    assert_int_equal(p[0].term, 3);
    fixture_reopen(f);
    load_ok(f, 4, &st);
    assert_int_equal(st.hard_state.term, 3);
    assert_int_equal(st.snapshot.index, 30);
    assert_int_equal(st.snapshot_data.len, 4);
    assert_memory_equal(st.snapshot_data.base, "snap", 4);
    entries_check(&st, 0, 4, 31, 4, 3, false);
    storage_state_close(&st);
    entries_free(&es);
}

static void test_compression(void **state)
{
    struct fixture *f = *state;
    struct storage__entry_view view;
    struct storage_state st;
    uint8_t raw[16384];

    /* Compression on (default threshold 512): 4096-byte text entries are
     * stored compressed, random ones and small ones raw. */
    append_ok(f, 1, 1, 7, 1, true);
    append_ok(f, 2, 1, 7, 1, false);
    commit_ok(f);
    fixture_close(f);
    raw_entry(f->dir, 1, 5, raw, sizeof(raw), &view); /* 4096 bytes, text */
    assert_true(view.compressed);
    assert_int_equal(view.raw_len, 4096);
    assert_true(view.payload_len < 4096 / 4);
    raw_entry(f->dir, 2, 5, raw, sizeof(raw), &view); /* 4096, random */
    assert_false(view.compressed);
    raw_entry(f->dir, 1, 3, raw, sizeof(raw), &view); /* 128 bytes */
    assert_false(view.compressed);

    /* Compression off: same data stored raw; both read back intact. */
    f->opts.compress_bytes_min = 0;
    fixture_open(f);
    append_ok(f, 3, 1, 7, 1, true);
    commit_ok(f);
    fixture_close(f);
    raw_entry(f->dir, 3, 5, raw, sizeof(raw), &view);
    assert_false(view.compressed);
    fixture_open(f);
    for (uint32_t part = 1; part <= 3; part++) {
        load_ok(f, part, &st);
        entries_check(&st, 0, part, 1, 7, 1, part != 2);
        storage_state_close(&st);
    }
}

static void test_corrupt_records(void **state)
{
    struct fixture *f = *state;
    struct raft_snapshot_meta meta = snapshot_meta(10, 1);
    uint8_t *data = bytes_make(STORAGE__CHUNK_BYTES + 10, 3, true);
    struct raft_buf buf = {data, STORAGE__CHUNK_BYTES + 10};
    struct raft_hard_state hs;
    struct storage_state st;
    uint8_t k[8];

    memset(&hs, 0, sizeof(hs));
    hs.term = 2;
    assert_int_equal(storage_batch_put_hard_state(f->b, 1, &hs), 0);
    append_ok(f, 1, 1, 6, 1, true);
    assert_int_equal(storage_batch_put_hard_state(f->b, 2, &hs), 0);
    assert_int_equal(storage_batch_compact(f->b, 2, &meta, buf), 0);
    append_ok(f, 3, 1, 6, 1, true);
    commit_ok(f);
    fixture_close(f);

    /* Entry 3 of partition 1: a payload byte. */
    storage__key_entry(3, k);
    raw_flip(f->dir, "log.1", k, 8, -1);
    /* Entry 5 of partition 3 (compressed): the version byte. */
    storage__key_entry(5, k);
    raw_flip(f->dir, "log.3", k, 8, 0);
    /* Snapshot chunk 1 of partition 2. */
    storage__key_chunk(2, 1, k);
    raw_flip(f->dir, "snap", k, 8, -2);

    fixture_open(f);
    assert_int_equal(storage_load(f->s, 1, &st), STORAGE_E_CORRUPT);
    assert_non_null(strstr(storage_errmsg(f->s), "partition 1: entry 3"));
    assert_non_null(strstr(storage_errmsg(f->s), "checksum"));
    assert_null(st.entries);
    storage_state_close(&st);
    assert_int_equal(storage_load(f->s, 3, &st), STORAGE_E_CORRUPT);
    assert_non_null(strstr(storage_errmsg(f->s), "entry 5: unsupported"));
    assert_int_equal(storage_load(f->s, 2, &st), STORAGE_E_CORRUPT);
    assert_non_null(strstr(storage_errmsg(f->s), "snapshot chunk 1"));
    fixture_close(f);

    /* The hard state record of partition 1. */
    storage__key_meta(1, STORAGE__RECORD_HARD_STATE, k);
    raw_flip(f->dir, "meta", k, STORAGE__KEY_META_BYTES, 9);
    fixture_open(f);
    assert_int_equal(storage_load(f->s, 1, &st), STORAGE_E_CORRUPT);
    assert_non_null(strstr(storage_errmsg(f->s), "hard state record"));
    /* Format stamp. */
    fixture_close(f);
    k[0] = 0;
    raw_flip(f->dir, "meta", k, 1, 8);
    {
        char err[STORAGE_ERRMSG_BYTES];
        struct storage *s = NULL;
        assert_int_equal(storage_open_ex(f->dir, &f->opts, &s, err),
                         STORAGE_E_CORRUPT);
        assert_non_null(strstr(err, "format stamp"));
    }
    raw_flip(f->dir, "meta", k, 1, 8); /* restore so teardown can open */
    fixture_open(f);
    free(data);
}

static void test_batch_limits(void **state)
{
    struct fixture *f = *state;
    struct raft_hard_state hs;
    struct raft_entry e;
    uint8_t payload[600];
    uint32_t ops;
    uint64_t bytes;

    fixture_close(f);
    f->opts.batch_bytes_max = 2000;
    f->opts.batch_ops_max = 8;
    fixture_open(f);
    memset(&e, 0, sizeof(e));
    memset(payload, 1, sizeof(payload));
    e.term = 1;
    e.type = RAFT_ENTRY_NORMAL;
    e.buf.base = payload;
    e.buf.len = sizeof(payload);
    for (raft_index i = 1; i <= 3; i++) {
        e.index = i;
        assert_int_equal(storage_batch_append(f->b, 1, &e, 1), 0);
    }
    ops = storage_batch_ops(f->b);
    bytes = storage_batch_bytes(f->b);
    assert_int_equal(ops, 6);
    assert_int_equal(bytes, 1800);
    e.index = 4;
    assert_int_equal(storage_batch_append(f->b, 1, &e, 1), STORAGE_E_BUSY);
    memset(&hs, 0, sizeof(hs));
    assert_int_equal(storage_batch_put_hard_state(f->b, 1, &hs),
                     STORAGE_E_BUSY); /* bytes */
    assert_int_equal(storage_batch_put_commit(f->b, 1, 1), 0);
    assert_int_equal(storage_batch_put_commit(f->b, 1, 2), 0);
    assert_int_equal(storage_batch_put_commit(f->b, 1, 3), STORAGE_E_BUSY);
    assert_int_equal(storage_batch_ops(f->b), 8);
    assert_int_equal(storage_batch_bytes(f->b), bytes);
    commit_ok(f);
    storage_batch_reset(f->b);
    assert_true(storage_batch_empty(f->b));
    assert_int_equal(storage_batch_append(f->b, 1, &e, 1), 0);

    /* Alone too big. */
    storage_batch_reset(f->b);
    {
        uint8_t big[2100];
        memset(big, 0, sizeof(big));
        e.buf.base = big;
        e.buf.len = sizeof(big);
        assert_int_equal(storage_batch_append(f->b, 1, &e, 1),
                         STORAGE_E_TOO_BIG);
    }
    assert_true(storage_batch_empty(f->b));
    /* Committing an empty batch is a no-op. */
    commit_ok(f);
    assert_int_equal(storage_batch_commit(f->s, f->b), STORAGE_E_INVALID);
    assert_non_null(strstr(storage_errmsg(f->s), "already committed"));
}

static void test_map_full(void **state)
{
    struct fixture *f = *state;
    struct storage_state st;
    uint8_t *data = bytes_make(STORAGE__CHUNK_BYTES, 9, false);
    int rv = 0;

    fixture_close(f);
    f->opts.map_bytes = UINT64_C(1) << 20;
    fixture_open(f);
    for (raft_index i = 1; i <= 64 && rv == 0; i++) {
        struct raft_entry e = {1, i, RAFT_ENTRY_NORMAL, {data, 64 * 1024}};
        storage_batch_reset(f->b);
        assert_int_equal(storage_batch_append(f->b, 1, &e, 1), 0);
        rv = storage_batch_commit(f->s, f->b);
    }
    assert_int_equal(rv, STORAGE_E_FULL);
    assert_non_null(strstr(storage_errmsg(f->s), "map_bytes"));
    /* Not fatal: loads still work and show only committed entries. */
    load_ok(f, 1, &st);
    assert_true(st.entry_count > 0);
    assert_true(st.entry_count < 64);
    storage_state_close(&st);
    free(data);
}

struct commit_job {
    struct storage *s;
    struct storage_batch *b;
    int rv;
};

static void *commit_thread(void *arg)
{
    struct commit_job *job = arg;
    job->rv = storage_batch_commit(job->s, job->b);
    return NULL;
}

/* The broker fills batches on its loop thread and commits them on a
 * worker; double-buffered: one batch fills while the other commits. */
static void test_commit_from_worker_thread(void **state)
{
    struct fixture *f = *state;
    struct storage_batch *batches[2];
    struct storage_state st;

    batches[0] = f->b;
    assert_int_equal(storage_batch_new(f->s, &batches[1]), 0);
    append_into(batches[0], 6, 1, 3, 1, true);
    for (int round = 0; round < 6; round++) {
        struct storage_batch *committing = batches[round % 2];
        struct storage_batch *filling = batches[(round + 1) % 2];
        struct commit_job job = {f->s, committing, -1};
        const struct storage_persisted *p;
        pthread_t thread;
        size_t n;

        assert_int_equal(pthread_create(&thread, NULL, commit_thread, &job), 0);
        if (round < 5) { /* the loop fills the next batch meanwhile */
            storage_batch_reset(filling);
            append_into(filling, 6, (raft_index)round * 3 + 4, 3, 1,
                        round % 2 != 0);
        }
        assert_int_equal(pthread_join(thread, NULL), 0);
        assert_int_equal(job.rv, 0);
        p = storage_batch_persisted(committing, &n);
        assert_int_equal(n, 1);
        assert_int_equal(p[0].index, (raft_index)round * 3 + 3);
    }
    storage_batch_free(batches[1]);
    load_ok(f, 6, &st);
    assert_int_equal(st.entry_count, 18);
    for (int round = 0; round < 6; round++) {
        entries_check(&st, (size_t)round * 3, 6, (raft_index)round * 3 + 1, 3,
                      1, round % 2 == 0);
    }
    storage_state_close(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_partition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hard_state_roundtrip, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_entries_truncate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_gap_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_install, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multi_partition_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_put_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compression, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_from_worker_thread, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("storage", tests, NULL, NULL);
}
