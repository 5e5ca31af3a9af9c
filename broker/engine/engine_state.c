/* engine_state.c: the engine's state in LMDB: the environment, its named
 * tables (layouts in engine_internal.h), typed get/put helpers used by the
 * processors and appliers, and the whole-state operations: snapshots,
 * the state hash, statistics and the next-due timer.
 *
 * Data flow: processors read through eng_get()/eng_*_get(); appliers write
 * through eng_put()/eng_del(); both inside the transaction of their
 * struct eng_ctx. Snapshots dump every table in a fixed order:
 *
 *   zstd frame (content checksum on) of:
 *   +--------+---------+---------+------------------------------------+
 *   | "TENG" | u32 ver | u32 n   | n tables:                          |
 *   |        | = 1     | tables  |  u32 name len, name, u64 entries,  |
 *   |        |         |         |  entries x (u32 klen, key,         |
 *   |        |         |         |             u32 vlen, value)       |
 *   +--------+---------+---------+------------------------------------+
 *   (integers big-endian)
 *
 * Restoring validates the whole image first, then replaces every table in
 * one write transaction, so a bad snapshot leaves the state unchanged.
 */
#define _POSIX_C_SOURCE 200809L
#include "broker/engine/engine_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <zstd.h>

#define ENG_SNAP_MAGIC "TENG"
#define ENG_SNAP_VERSION 1u

const char *const eng_table_names[ENG_T_COUNT] = {
    [ENG_T_META] = "meta",
    [ENG_T_PROC] = "proc",
    [ENG_T_PROC_VER] = "proc_ver",
    [ENG_T_PROC_LATEST] = "proc_latest",
    [ENG_T_ELEM] = "elem",
    [ENG_T_ELEM_CHILD] = "elem_child",
    [ENG_T_JOIN] = "join",
    [ENG_T_VAR] = "var",
    [ENG_T_TMPVAR] = "tmpvar",
    [ENG_T_JOB] = "job",
    [ENG_T_JOB_ACT] = "job_act",
    [ENG_T_JOB_DEADLINE] = "job_deadline",
    [ENG_T_JOB_BACKOFF] = "job_backoff",
    [ENG_T_INCIDENT] = "incident",
    [ENG_T_INCIDENT_ELEM] = "incident_elem",
    [ENG_T_MSG] = "msg",
    [ENG_T_MSG_ID] = "msg_id",
    [ENG_T_MSG_DEADLINE] = "msg_deadline",
    [ENG_T_DIST] = "dist",
    [ENG_T_DIST_PENDING] = "dist_pending",
    [ENG_T_AWAIT] = "await",
    [ENG_T_EXPORTER] = "exporter",
};

/* ------------------------------------------------------------------------
 * Encodings
 * --------------------------------------------------------------------- */

void eng_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

void eng_put_u64(unsigned char *p, uint64_t v)
{
    eng_put_u32(p, (uint32_t)(v >> 32));
    eng_put_u32(p + 4, (uint32_t)v);
}

uint32_t eng_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

uint64_t eng_get_u64(const unsigned char *p)
{
    return (uint64_t)eng_get_u32(p) << 32 | eng_get_u32(p + 4);
}

void eng_key8(unsigned char out[8], uint64_t key)
{
    eng_put_u64(out, key);
}

void eng_key16(unsigned char out[16], uint64_t a, uint64_t b)
{
    eng_put_u64(out, a);
    eng_put_u64(out + 8, b);
}

void eng_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    int ok = EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
    ENGINE_ASSERT(ok == 1);
    ENGINE_ASSERT(n == 32);
    (void)ok;
}

/* ------------------------------------------------------------------------
 * Environment
 * --------------------------------------------------------------------- */

int eng_state_open(struct engine *e, const char *dir, size_t map_size,
                   char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    int rc;

    ENGINE_ASSERT(e->env == NULL);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "engine: mkdir %s: %s", dir, strerror(errno));
        return ENGINE_E_IO;
    }
    rc = mdb_env_create(&e->env);
    if (rc != 0) {
        snprintf(err, errlen, "engine: mdb_env_create: %s", mdb_strerror(rc));
        e->env = NULL;
        return ENGINE_E_IO;
    }
    rc = mdb_env_set_maxdbs(e->env, ENG_T_COUNT + 4);
    if (rc == 0)
        rc = mdb_env_set_mapsize(e->env, map_size);
    if (rc == 0)
        rc = mdb_env_open(e->env, dir, MDB_NOSYNC | MDB_NOTLS, 0644);
    if (rc != 0) {
        snprintf(err, errlen, "engine: mdb_env_open %s: %s", dir,
                 mdb_strerror(rc));
        goto err_after_env;
    }
    rc = mdb_txn_begin(e->env, NULL, 0, &txn);
    if (rc != 0) {
        snprintf(err, errlen, "engine: mdb_txn_begin: %s", mdb_strerror(rc));
        goto err_after_env;
    }
    for (int t = 0; t < ENG_T_COUNT; t++) {
        rc = mdb_dbi_open(txn, eng_table_names[t], MDB_CREATE, &e->dbi[t]);
        if (rc != 0) {
            snprintf(err, errlen, "engine: mdb_dbi_open %s: %s",
                     eng_table_names[t], mdb_strerror(rc));
            mdb_txn_abort(txn);
            goto err_after_env;
        }
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        snprintf(err, errlen, "engine: mdb_txn_commit: %s", mdb_strerror(rc));
        goto err_after_env;
    }
    rc = eng_state_load_meta(e);
    if (rc != 0) {
        snprintf(err, errlen, "engine: cannot read the meta table");
        mdb_env_close(e->env);
        e->env = NULL;
        return rc;
    }
    return 0;

err_after_env:
    mdb_env_close(e->env);
    e->env = NULL;
    return ENGINE_E_IO;
}

void eng_state_close(struct engine *e)
{
    if (e->env != NULL) {
        mdb_env_close(e->env);
        e->env = NULL;
    }
}

static uint64_t eng_meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *name)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    if (mdb_get(txn, dbi, &k, &v) != 0 || v.mv_size != 8)
        return 0;
    return eng_get_u64(v.mv_data);
}

int eng_state_load_meta(struct engine *e)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return ENGINE_E_IO;
    e->applied_index = eng_meta_u64(txn, e->dbi[ENG_T_META], "applied");
    e->key_counter = eng_meta_u64(txn, e->dbi[ENG_T_META], "keys");
    e->next_due = eng_state_next_due(e, txn);
    mdb_txn_abort(txn);
    return 0;
}

int eng_state_save_meta(struct engine *e, MDB_txn *txn, uint64_t applied,
                        uint64_t counter)
{
    unsigned char b[8];
    MDB_val k, v = {8, b};
    int rc;

    eng_put_u64(b, applied);
    k.mv_data = (void *)"applied";
    k.mv_size = 7;
    rc = mdb_put(txn, e->dbi[ENG_T_META], &k, &v, 0);
    if (rc != 0)
        return ENGINE_E_IO;
    eng_put_u64(b, counter);
    k.mv_data = (void *)"keys";
    k.mv_size = 4;
    rc = mdb_put(txn, e->dbi[ENG_T_META], &k, &v, 0);
    return rc == 0 ? 0 : ENGINE_E_IO;
}

static uint64_t eng_first_time(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t t = UINT64_MAX;

    if (mdb_cursor_open(txn, dbi, &cur) != 0)
        return UINT64_MAX;
    if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 && k.mv_size >= 8)
        t = eng_get_u64(k.mv_data);
    mdb_cursor_close(cur);
    return t;
}

uint64_t eng_state_next_due(struct engine *e, MDB_txn *txn)
{
    uint64_t a = eng_first_time(txn, e->dbi[ENG_T_JOB_DEADLINE]);
    uint64_t b = eng_first_time(txn, e->dbi[ENG_T_JOB_BACKOFF]);
    uint64_t m = eng_first_time(txn, e->dbi[ENG_T_MSG_DEADLINE]);
    uint64_t r = a < b ? a : b;
    return r < m ? r : m;
}

/* ------------------------------------------------------------------------
 * Raw access
 * --------------------------------------------------------------------- */

static int eng_lmdb_fail(struct eng_ctx *c, int rc)
{
    (void)rc;
    if (c->fail == 0)
        c->fail = ENGINE_E_IO;
    return ENGINE_E_IO;
}

int eng_get(struct eng_ctx *c, enum eng_table t, const void *k, size_t klen,
            MDB_val *out)
{
    MDB_val key = {klen, (void *)k};
    int rc;

    ENGINE_ASSERT(t < ENG_T_COUNT);
    ENGINE_ASSERT(c->txn != NULL);
    rc = mdb_get(c->txn, c->e->dbi[t], &key, out);
    if (rc == 0)
        return 0;
    if (rc == MDB_NOTFOUND)
        return ENG_NOTFOUND;
    return eng_lmdb_fail(c, rc);
}

int eng_put(struct eng_ctx *c, enum eng_table t, const void *k, size_t klen,
            const void *v, size_t vlen)
{
    MDB_val key = {klen, (void *)k}, val = {vlen, (void *)v};
    int rc;

    ENGINE_ASSERT(t < ENG_T_COUNT);
    ENGINE_ASSERT(klen > 0 && klen <= 511);
    rc = mdb_put(c->txn, c->e->dbi[t], &key, &val, 0);
    return rc == 0 ? 0 : eng_lmdb_fail(c, rc);
}

int eng_del(struct eng_ctx *c, enum eng_table t, const void *k, size_t klen)
{
    MDB_val key = {klen, (void *)k};
    int rc;

    ENGINE_ASSERT(t < ENG_T_COUNT);
    rc = mdb_del(c->txn, c->e->dbi[t], &key, NULL);
    if (rc == 0)
        return 0;
    if (rc == MDB_NOTFOUND)
        return ENG_NOTFOUND;
    return eng_lmdb_fail(c, rc);
}

int eng_del_prefix(struct eng_ctx *c, enum eng_table t, const void *prefix,
                   size_t plen)
{
    MDB_cursor *cur;
    MDB_val k = {plen, (void *)prefix}, v;
    int rc = mdb_cursor_open(c->txn, c->e->dbi[t], &cur);

    if (rc != 0)
        return eng_lmdb_fail(c, rc);
    /* Re-seek after every delete: simple and independent of LMDB's
     * cursor position rules after mdb_cursor_del. */
    for (;;) {
        k.mv_size = plen;
        k.mv_data = (void *)prefix;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc == 0 || rc == MDB_NOTFOUND)
        return 0;
    return eng_lmdb_fail(c, rc);
}

int eng_each_prefix(struct eng_ctx *c, enum eng_table t, const void *prefix,
                    size_t plen, size_t max, eng_each_fn fn, void *arg)
{
    MDB_cursor *cur;
    MDB_val k = {plen, (void *)prefix}, v;
    size_t visited = 0;
    int ret = 0;
    int rc = mdb_cursor_open(c->txn, c->e->dbi[t], &cur);

    if (rc != 0)
        return eng_lmdb_fail(c, rc);
    rc = plen > 0 ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                  : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && visited < max && k.mv_size >= plen &&
           (plen == 0 || memcmp(k.mv_data, prefix, plen) == 0)) {
        ret = fn(arg, &k, &v);
        visited++;
        if (ret != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (ret != 0)
        return ret;
    if (rc == 0 || rc == MDB_NOTFOUND)
        return 0;
    return eng_lmdb_fail(c, rc);
}

int eng_put_msg(struct eng_ctx *c, enum eng_table t, const void *k, size_t klen,
                const void *hdr, size_t hlen, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    unsigned char *buf = malloc(hlen + n + 1);
    int rc;

    if (buf == NULL) {
        if (c->fail == 0)
            c->fail = ENGINE_E_NOMEM;
        return ENGINE_E_NOMEM;
    }
    if (hlen > 0)
        memcpy(buf, hdr, hlen);
    size_t packed = protobuf_c_message_pack(m, buf + hlen);
    ENGINE_ASSERT(packed == n);
    (void)packed;
    rc = eng_put(c, t, k, klen, buf, hlen + n);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------------
 * Typed helpers
 * --------------------------------------------------------------------- */

int eng_elem_get(struct eng_ctx *c, uint64_t key, struct eng_elem_hdr *hdr,
                 Tandem__Record__ProcessInstanceRecordValue **out)
{
    unsigned char k[8];
    MDB_val v;
    int rc;

    eng_key8(k, key);
    rc = eng_get(c, ENG_T_ELEM, k, 8, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size < ENG_ELEM_HDR_BYTES) {
        c->fail = ENGINE_E_CORRUPT;
        return ENGINE_E_CORRUPT;
    }
    const unsigned char *p = v.mv_data;
    if (hdr != NULL) {
        hdr->state = eng_get_u32(p);
        hdr->children = eng_get_u32(p + 4);
        hdr->flows = eng_get_u32(p + 8);
        hdr->type = eng_get_u32(p + 12);
        hdr->job_key = eng_get_u64(p + 16);
    }
    if (out != NULL) {
        *out = tandem__record__process_instance_record_value__unpack(
            NULL, v.mv_size - ENG_ELEM_HDR_BYTES, p + ENG_ELEM_HDR_BYTES);
        if (*out == NULL) {
            c->fail = ENGINE_E_CORRUPT;
            return ENGINE_E_CORRUPT;
        }
    }
    return 0;
}

static void eng_elem_hdr_encode(unsigned char *p,
                                const struct eng_elem_hdr *hdr)
{
    eng_put_u32(p, hdr->state);
    eng_put_u32(p + 4, hdr->children);
    eng_put_u32(p + 8, hdr->flows);
    eng_put_u32(p + 12, hdr->type);
    eng_put_u64(p + 16, hdr->job_key);
}

int eng_elem_put(struct eng_ctx *c, uint64_t key,
                 const struct eng_elem_hdr *hdr,
                 const Tandem__Record__ProcessInstanceRecordValue *v)
{
    unsigned char k[8], h[ENG_ELEM_HDR_BYTES];

    eng_key8(k, key);
    eng_elem_hdr_encode(h, hdr);
    return eng_put_msg(c, ENG_T_ELEM, k, 8, h, sizeof h,
                       (const ProtobufCMessage *)v);
}

int eng_elem_put_hdr(struct eng_ctx *c, uint64_t key,
                     const struct eng_elem_hdr *hdr)
{
    unsigned char k[8];
    MDB_val v;
    int rc;

    eng_key8(k, key);
    rc = eng_get(c, ENG_T_ELEM, k, 8, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size < ENG_ELEM_HDR_BYTES)
        return ENGINE_E_CORRUPT;
    unsigned char *copy = malloc(v.mv_size);
    if (copy == NULL)
        return c->fail = ENGINE_E_NOMEM;
    memcpy(copy, v.mv_data, v.mv_size);
    eng_elem_hdr_encode(copy, hdr);
    rc = eng_put(c, ENG_T_ELEM, k, 8, copy, v.mv_size);
    free(copy);
    return rc;
}

int eng_job_get(struct eng_ctx *c, uint64_t key, uint32_t *state,
                Tandem__Record__JobRecordValue **out)
{
    unsigned char k[8];
    MDB_val v;
    int rc;

    eng_key8(k, key);
    rc = eng_get(c, ENG_T_JOB, k, 8, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size < 4) {
        c->fail = ENGINE_E_CORRUPT;
        return ENGINE_E_CORRUPT;
    }
    if (state != NULL)
        *state = eng_get_u32(v.mv_data);
    if (out != NULL) {
        *out = tandem__record__job_record_value__unpack(
            NULL, v.mv_size - 4, (const unsigned char *)v.mv_data + 4);
        if (*out == NULL) {
            c->fail = ENGINE_E_CORRUPT;
            return ENGINE_E_CORRUPT;
        }
    }
    return 0;
}

int eng_job_put(struct eng_ctx *c, uint64_t key, uint32_t state,
                Tandem__Record__JobRecordValue *v)
{
    unsigned char k[8], h[4];
    char *vars = v->variables;
    int rc;

    ENGINE_ASSERT(state >= ENG_JOB_ACTIVATABLE);
    ENGINE_ASSERT(state <= ENG_JOB_ERROR_THROWN);
    eng_key8(k, key);
    eng_put_u32(h, state);
    v->variables = (char *)"{}"; /* variables live in the scopes */
    rc = eng_put_msg(c, ENG_T_JOB, k, 8, h, 4, (const ProtobufCMessage *)v);
    v->variables = vars;
    return rc;
}

const char *eng_job_state_name(uint32_t state)
{
    switch (state) {
    case ENG_JOB_ACTIVATABLE:
        return "ACTIVATABLE";
    case ENG_JOB_ACTIVATED:
        return "ACTIVATED";
    case ENG_JOB_FAILED:
        return "FAILED";
    case ENG_JOB_ERROR_THROWN:
        return "ERROR_THROWN";
    default:
        return "NOT_FOUND";
    }
}

int eng_proc_get(struct eng_ctx *c, uint64_t key,
                 Tandem__Record__ProcessRecordValue **out)
{
    unsigned char k[8];
    MDB_val v;
    int rc;

    eng_key8(k, key);
    rc = eng_get(c, ENG_T_PROC, k, 8, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size < 32) {
        c->fail = ENGINE_E_CORRUPT;
        return ENGINE_E_CORRUPT;
    }
    if (out != NULL) {
        *out = tandem__record__process_record_value__unpack(
            NULL, v.mv_size - 32, (const unsigned char *)v.mv_data + 32);
        if (*out == NULL) {
            c->fail = ENGINE_E_CORRUPT;
            return ENGINE_E_CORRUPT;
        }
    }
    return 0;
}

int eng_proc_latest(struct eng_ctx *c, const char *id, uint32_t *version,
                    uint64_t *key)
{
    size_t n = strlen(id);
    MDB_val v;
    int rc;

    if (n == 0 || n > ENG_NAME_BYTES_MAX)
        return ENG_NOTFOUND;
    rc = eng_get(c, ENG_T_PROC_LATEST, id, n, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size != 12)
        return c->fail = ENGINE_E_CORRUPT;
    *version = eng_get_u32(v.mv_data);
    *key = eng_get_u64((const unsigned char *)v.mv_data + 4);
    return 0;
}

int eng_proc_by_version(struct eng_ctx *c, const char *id, uint32_t version,
                        uint64_t *key)
{
    unsigned char k[ENG_NAME_BYTES_MAX + 5];
    size_t n = strlen(id);
    MDB_val v;
    int rc;

    if (n == 0 || n > ENG_NAME_BYTES_MAX)
        return ENG_NOTFOUND;
    memcpy(k, id, n);
    k[n] = 0;
    eng_put_u32(k + n + 1, version);
    rc = eng_get(c, ENG_T_PROC_VER, k, n + 5, &v);
    if (rc != 0)
        return rc;
    if (v.mv_size != 8)
        return c->fail = ENGINE_E_CORRUPT;
    *key = eng_get_u64(v.mv_data);
    return 0;
}

/* ------------------------------------------------------------------------
 * Whole-state operations (public API)
 * --------------------------------------------------------------------- */

struct eng_buf {
    unsigned char *p;
    size_t len, cap;
    bool failed;
};

static void eng_buf_add(struct eng_buf *b, const void *data, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void eng_buf_u32(struct eng_buf *b, uint32_t v)
{
    unsigned char x[4];
    eng_put_u32(x, v);
    eng_buf_add(b, x, 4);
}

static void eng_buf_u64(struct eng_buf *b, uint64_t v)
{
    unsigned char x[8];
    eng_put_u64(x, v);
    eng_buf_add(b, x, 8);
}

int engine_snapshot_encode(struct engine *e, void **out, size_t *len)
{
    struct eng_buf b = {0};
    MDB_txn *txn;
    int rc;

    ENGINE_ASSERT(e != NULL);
    ENGINE_ASSERT(out != NULL && len != NULL);
    rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return ENGINE_E_IO;
    eng_buf_add(&b, ENG_SNAP_MAGIC, 4);
    eng_buf_u32(&b, ENG_SNAP_VERSION);
    eng_buf_u32(&b, ENG_T_COUNT);
    for (int t = 0; t < ENG_T_COUNT; t++) {
        MDB_stat st;
        MDB_cursor *cur;
        MDB_val k, v;
        size_t name_len = strlen(eng_table_names[t]);

        if (mdb_stat(txn, e->dbi[t], &st) != 0 ||
            mdb_cursor_open(txn, e->dbi[t], &cur) != 0) {
            mdb_txn_abort(txn);
            free(b.p);
            return ENGINE_E_IO;
        }
        eng_buf_u32(&b, (uint32_t)name_len);
        eng_buf_add(&b, eng_table_names[t], name_len);
        eng_buf_u64(&b, st.ms_entries);
        size_t count = 0;
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (rc == 0) {
            eng_buf_u32(&b, (uint32_t)k.mv_size);
            eng_buf_add(&b, k.mv_data, k.mv_size);
            eng_buf_u32(&b, (uint32_t)v.mv_size);
            eng_buf_add(&b, v.mv_data, v.mv_size);
            count++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
        ENGINE_ASSERT(count == st.ms_entries);
    }
    mdb_txn_abort(txn);
    if (b.failed) {
        free(b.p);
        return ENGINE_E_NOMEM;
    }

    size_t bound = ZSTD_compressBound(b.len);
    void *z = malloc(bound);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (z == NULL || cctx == NULL) {
        free(z);
        ZSTD_freeCCtx(cctx);
        free(b.p);
        return ENGINE_E_NOMEM;
    }
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
    size_t zn = ZSTD_compress2(cctx, z, bound, b.p, b.len);
    ZSTD_freeCCtx(cctx);
    free(b.p);
    if (ZSTD_isError(zn)) {
        free(z);
        return ENGINE_E_NOMEM;
    }
    *out = z;
    *len = zn;
    return 0;
}

struct eng_reader {
    const unsigned char *p;
    size_t len, off;
};

static bool eng_read(struct eng_reader *r, size_t n, const unsigned char **out)
{
    if (r->len - r->off < n)
        return false;
    *out = r->p + r->off;
    r->off += n;
    return true;
}

static bool eng_read_u32(struct eng_reader *r, uint32_t *v)
{
    const unsigned char *p;
    if (!eng_read(r, 4, &p))
        return false;
    *v = eng_get_u32(p);
    return true;
}

static bool eng_read_u64(struct eng_reader *r, uint64_t *v)
{
    const unsigned char *p;
    if (!eng_read(r, 8, &p))
        return false;
    *v = eng_get_u64(p);
    return true;
}

/* Walks a decompressed image; with txn != NULL writes every entry. */
static int eng_snapshot_walk(struct engine *e, const unsigned char *img,
                             size_t len, MDB_txn *txn)
{
    struct eng_reader r = {img, len, 0};
    const unsigned char *p;
    uint32_t version, ntables;

    if (!eng_read(&r, 4, &p) || memcmp(p, ENG_SNAP_MAGIC, 4) != 0)
        return ENGINE_E_CORRUPT;
    if (!eng_read_u32(&r, &version) || version != ENG_SNAP_VERSION)
        return ENGINE_E_CORRUPT;
    if (!eng_read_u32(&r, &ntables) || ntables != ENG_T_COUNT)
        return ENGINE_E_CORRUPT;
    for (uint32_t t = 0; t < ntables; t++) {
        uint32_t name_len;
        uint64_t entries;
        const unsigned char *name;

        if (!eng_read_u32(&r, &name_len) ||
            name_len != strlen(eng_table_names[t]) ||
            !eng_read(&r, name_len, &name) ||
            memcmp(name, eng_table_names[t], name_len) != 0 ||
            !eng_read_u64(&r, &entries))
            return ENGINE_E_CORRUPT;
        for (uint64_t i = 0; i < entries; i++) {
            uint32_t klen, vlen;
            const unsigned char *k, *v;
            if (!eng_read_u32(&r, &klen) || klen == 0 || klen > 511 ||
                !eng_read(&r, klen, &k) || !eng_read_u32(&r, &vlen) ||
                !eng_read(&r, vlen, &v))
                return ENGINE_E_CORRUPT;
            if (txn != NULL) {
                MDB_val mk = {klen, (void *)k}, mv = {vlen, (void *)v};
                if (mdb_put(txn, e->dbi[t], &mk, &mv, MDB_APPEND) != 0)
                    return ENGINE_E_IO;
            }
        }
    }
    return r.off == r.len ? 0 : ENGINE_E_CORRUPT;
}

int engine_snapshot_restore(struct engine *e, const void *data, size_t len)
{
    unsigned long long size;
    unsigned char *img;
    MDB_txn *txn;
    int rv;

    ENGINE_ASSERT(e != NULL);
    ENGINE_ASSERT(e->apply_txn == NULL);
    if (data == NULL || len == 0)
        return ENGINE_E_CORRUPT;
    size = ZSTD_getFrameContentSize(data, len);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
        size > ENG_SNAPSHOT_BYTES_MAX || size < 12)
        return ENGINE_E_CORRUPT;
    img = malloc((size_t)size);
    if (img == NULL)
        return ENGINE_E_NOMEM;
    size_t got = ZSTD_decompress(img, (size_t)size, data, len);
    if (ZSTD_isError(got) || got != size) {
        free(img);
        return ENGINE_E_CORRUPT;
    }
    rv = eng_snapshot_walk(e, img, got, NULL);
    if (rv != 0) {
        free(img);
        return rv;
    }
    if (mdb_txn_begin(e->env, NULL, 0, &txn) != 0) {
        free(img);
        return ENGINE_E_IO;
    }
    for (int t = 0; t < ENG_T_COUNT; t++) {
        if (mdb_drop(txn, e->dbi[t], 0) != 0) {
            mdb_txn_abort(txn);
            free(img);
            return ENGINE_E_IO;
        }
    }
    rv = eng_snapshot_walk(e, img, got, txn);
    free(img);
    if (rv != 0) {
        mdb_txn_abort(txn);
        return rv;
    }
    if (mdb_txn_commit(txn) != 0)
        return ENGINE_E_IO;
    eng_models_clear(e);
    return eng_state_load_meta(e);
}

static void eng_fnv(uint64_t *h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        *h ^= p[i];
        *h *= 1099511628211ull;
    }
}

uint64_t engine_state_hash(struct engine *e)
{
    uint64_t h = 14695981039346656037ull;
    MDB_txn *txn;

    ENGINE_ASSERT(e != NULL);
    if (mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    for (int t = 0; t < ENG_T_COUNT; t++) {
        MDB_cursor *cur;
        MDB_val k, v;
        unsigned char n[8];

        eng_fnv(&h, eng_table_names[t], strlen(eng_table_names[t]) + 1);
        if (mdb_cursor_open(txn, e->dbi[t], &cur) != 0)
            continue;
        int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (rc == 0) {
            eng_put_u64(n, k.mv_size);
            eng_fnv(&h, n, 8);
            eng_fnv(&h, k.mv_data, k.mv_size);
            eng_put_u64(n, v.mv_size);
            eng_fnv(&h, n, 8);
            eng_fnv(&h, v.mv_data, v.mv_size);
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return h;
}

static uint64_t eng_entries(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_stat st;
    return mdb_stat(txn, dbi, &st) == 0 ? st.ms_entries : 0;
}

void engine_stats_get(struct engine *e, struct engine_stats *out)
{
    MDB_txn *txn;

    ENGINE_ASSERT(e != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    out->applied_index = e->applied_index;
    out->key_counter = e->key_counter;
    if (mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn) != 0)
        return;
    out->processes = eng_entries(txn, e->dbi[ENG_T_PROC]);
    out->jobs_activatable = eng_entries(txn, e->dbi[ENG_T_JOB_ACT]);
    out->jobs_activated = eng_entries(txn, e->dbi[ENG_T_JOB_DEADLINE]);
    out->incidents_open = eng_entries(txn, e->dbi[ENG_T_INCIDENT]);
    out->messages_alive = eng_entries(txn, e->dbi[ENG_T_MSG]);
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_cursor_open(txn, e->dbi[ENG_T_ELEM], &cur) == 0) {
        int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (rc == 0) {
            if (v.mv_size >= ENG_ELEM_HDR_BYTES &&
                eng_get_u32((const unsigned char *)v.mv_data + 12) ==
                    BPMN_PROCESS)
                out->instances_active++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
}

bool engine_jobs_activatable(struct engine *e, const char *type)
{
    unsigned char sum[32];
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    bool found = false;

    ENGINE_ASSERT(e != NULL);
    if (type == NULL)
        return false;
    eng_sha256(type, strlen(type), sum);
    if (mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn) != 0)
        return false;
    if (mdb_cursor_open(txn, e->dbi[ENG_T_JOB_ACT], &cur) == 0) {
        k.mv_data = sum;
        k.mv_size = 16;
        if (mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) == 0 &&
            k.mv_size == 24 && memcmp(k.mv_data, sum, 16) == 0)
            found = true;
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return found;
}

int engine_exporter_get(struct engine *e, const char *id, int64_t *position,
                        void **metadata, size_t *metadata_len,
                        uint32_t *metadata_version)
{
    MDB_txn *txn;
    MDB_val k, v;
    int rc;

    ENGINE_ASSERT(e != NULL && id != NULL && position != NULL);
    *position = -1;
    if (metadata != NULL) {
        *metadata = NULL;
        *metadata_len = 0;
    }
    if (metadata_version != NULL)
        *metadata_version = 0;
    if (mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn) != 0)
        return ENGINE_E_IO;
    k.mv_data = (void *)id;
    k.mv_size = strlen(id);
    rc = mdb_get(txn, e->dbi[ENG_T_EXPORTER], &k, &v);
    if (rc == 0) {
        Tandem__Record__ExporterRecordValue *x =
            tandem__record__exporter_record_value__unpack(NULL, v.mv_size,
                                                          v.mv_data);
        if (x == NULL) {
            mdb_txn_abort(txn);
            return ENGINE_E_CORRUPT;
        }
        *position = x->position;
        if (metadata_version != NULL)
            *metadata_version = x->metadata_version;
        if (metadata != NULL && x->metadata.len > 0) {
            *metadata = malloc(x->metadata.len);
            if (*metadata == NULL) {
                tandem__record__exporter_record_value__free_unpacked(x, NULL);
                mdb_txn_abort(txn);
                return ENGINE_E_NOMEM;
            }
            memcpy(*metadata, x->metadata.data, x->metadata.len);
            *metadata_len = x->metadata.len;
        }
        tandem__record__exporter_record_value__free_unpacked(x, NULL);
    }
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND)
        return 1;
    return rc == 0 ? 0 : ENGINE_E_IO;
}

uint64_t engine_next_due(const struct engine *e)
{
    ENGINE_ASSERT(e != NULL);
    return e->next_due;
}
