/* storage_record.c: the on-disk record formats of the LMDB storage.
 *
 * Raft state in memory -> storage__*_encode() -> LMDB value (+ key);
 * LMDB value (+ key) -> storage__*_decode() -> validated Raft state.
 *
 * Every value starts with the same 8-byte preamble:
 *
 *      0         1         2         3         4                   8
 *     +---------+---------+---------+---------+-------------------+
 *     | version | kind    | flags   | (kind-  | crc32c (u32 LE)   |
 *     | = 1     |         |         | specific)                   |
 *     +---------+---------+---------+---------+-------------------+
 *
 * crc32c = CRC32C(key bytes || value[0..4) || value[8..len)). Covering the
 * key means a valid record stored under the wrong key (another index,
 * another partition) is detected as corrupt. Integers in values are
 * little-endian; keys are big-endian so LMDB's memcmp order is numeric.
 *
 * Decoders are strict (exact lengths, zero reserved bytes, known flags) so
 * that any accepted value re-encodes to itself; the fuzz target checks
 * that. */
#include "broker/storage_record.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Byte order helpers
 * --------------------------------------------------------------------- */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (24 - 8 * i));
    }
}

/* ------------------------------------------------------------------------
 * Buffers
 * --------------------------------------------------------------------- */

int storage__buf_reserve(struct storage__buf *buf, size_t cap)
{
    uint8_t *p;
    size_t next;

    STORAGE_ASSERT(buf != NULL);
    STORAGE_ASSERT(buf->len <= buf->cap);
    if (cap <= buf->cap) {
        return 0;
    }
    next = buf->cap < 256 ? 256 : buf->cap;
    while (next < cap) {
        next = next > SIZE_MAX / 2 ? cap : next * 2;
    }
    p = realloc(buf->base, next);
    if (p == NULL) {
        return STORAGE_E_NOMEM;
    }
    buf->base = p;
    buf->cap = next;
    return 0;
}

void storage__buf_free(struct storage__buf *buf)
{
    free(buf->base);
    memset(buf, 0, sizeof(*buf));
}

/* ------------------------------------------------------------------------
 * CRC32C, slicing by 8 (tables built once, reflected polynomial 0x82F63B78)
 * --------------------------------------------------------------------- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) {
            c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        for (int t = 1; t < 8; t++) {
            uint32_t prev = crc_table[t - 1][n];
            crc_table[t][n] = (prev >> 8) ^ crc_table[0][prev & 0xFFu];
        }
    }
}

uint32_t storage__crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    pthread_once(&crc_once, crc_init);
    STORAGE_ASSERT(p != NULL || len == 0);
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ get_u32(p);
        uint32_t hi = get_u32(p + 4);
        crc = crc_table[7][lo & 0xFFu] ^ crc_table[6][(lo >> 8) & 0xFFu] ^
              crc_table[5][(lo >> 16) & 0xFFu] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xFFu] ^ crc_table[2][(hi >> 8) & 0xFFu] ^
              crc_table[1][(hi >> 16) & 0xFFu] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len-- > 0) {
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xFFu];
    }
    return ~crc;
}

/* ------------------------------------------------------------------------
 * Keys
 *
 *   entry  (in "log.<p>"):  +------------------------------+
 *                           | index (u64 big-endian)       |
 *                           +------------------------------+
 *   meta   (in "meta"):     +------------------+------+
 *                           | partition (BE32) | kind |
 *                           +------------------+------+
 *   format (in "meta"):     +------+
 *                           | 0x00 |   (1 byte: cannot collide with the
 *                           +------+    5-byte partition keys)
 *   chunk  (in "snap"):     +------------------+------------------+
 *                           | partition (BE32) | chunk no. (BE32) |
 *                           +------------------+------------------+
 * --------------------------------------------------------------------- */

void storage__key_entry(raft_index index, uint8_t out[STORAGE__KEY_ENTRY_BYTES])
{
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(index >> (56 - 8 * i));
    }
}

raft_index storage__key_entry_index(const uint8_t key[STORAGE__KEY_ENTRY_BYTES])
{
    raft_index index = 0;
    for (int i = 0; i < 8; i++) {
        index = (index << 8) | key[i];
    }
    return index;
}

void storage__key_meta(uint32_t partition, uint8_t kind,
                       uint8_t out[STORAGE__KEY_META_BYTES])
{
    put_be32(out, partition);
    out[4] = kind;
}

void storage__key_chunk(uint32_t partition, uint32_t chunk,
                        uint8_t out[STORAGE__KEY_CHUNK_BYTES])
{
    put_be32(out, partition);
    put_be32(out + 4, chunk);
}

/* ------------------------------------------------------------------------
 * Preamble and checksum
 * --------------------------------------------------------------------- */

static uint32_t record_crc(const void *key, size_t key_len, const uint8_t *val,
                           size_t len)
{
    uint32_t crc;

    STORAGE_ASSERT(len >= STORAGE__RECORD_HEADER_BYTES);
    crc = storage__crc32c(0, key, key_len);
    crc = storage__crc32c(crc, val, 4);
    return storage__crc32c(crc, val + STORAGE__RECORD_HEADER_BYTES,
                           len - STORAGE__RECORD_HEADER_BYTES);
}

void storage__record_seal(const void *key, size_t key_len, void *val,
                          size_t len)
{
    uint8_t *v = val;
    put_u32(v + 4, record_crc(key, key_len, v, len));
}

static void record_preamble(uint8_t *v, uint8_t kind, uint8_t flags,
                            uint8_t extra)
{
    v[0] = STORAGE__RECORD_VERSION;
    v[1] = kind;
    v[2] = flags;
    v[3] = extra;
    put_u32(v + 4, 0);
}

/* Checks length, version, kind and checksum, in that order. */
static int record_check(const void *key, size_t key_len, const uint8_t *v,
                        size_t len, uint8_t kind, size_t len_min,
                        const char **why)
{
    const char *reason = NULL;

    if (len < STORAGE__RECORD_HEADER_BYTES || len < len_min) {
        reason = "record too short";
    } else if (v[0] != STORAGE__RECORD_VERSION) {
        reason = "unsupported record version";
    } else if (v[1] != kind) {
        reason = "unexpected record kind";
    } else if (get_u32(v + 4) != record_crc(key, key_len, v, len)) {
        reason = "checksum mismatch";
    }
    if (reason != NULL) {
        if (why != NULL) {
            *why = reason;
        }
        return STORAGE_E_CORRUPT;
    }
    return 0;
}

static int corrupt(const char **why, const char *reason)
{
    if (why != NULL) {
        *why = reason;
    }
    return STORAGE_E_CORRUPT;
}

/* Writes payload at out->base + header, compressed if allowed and it saves
 * at least 1/8. Sets out->len and returns whether it compressed, or a
 * negative error. */
static int payload_pack(const struct storage__codec *codec, bool try_zstd,
                        size_t header, const void *payload, size_t len,
                        struct storage__buf *out)
{
    int rv;

    if (try_zstd && codec != NULL && codec->cctx != NULL && len > 0) {
        size_t bound = ZSTD_compressBound(len);
        size_t n;
        rv = storage__buf_reserve(out, header + bound);
        if (rv != 0) {
            return rv;
        }
        n = ZSTD_compressCCtx(codec->cctx, out->base + header, bound, payload,
                              len, codec->level);
        if (!ZSTD_isError(n) && n <= len - len / 8) {
            out->len = header + n;
            return 1;
        }
    }
    rv = storage__buf_reserve(out, header + len);
    if (rv != 0) {
        return rv;
    }
    if (len > 0) {
        memcpy(out->base + header, payload, len);
    }
    out->len = header + len;
    return 0;
}

int storage__payload_unpack(const struct storage__codec *codec,
                            const uint8_t *payload, size_t payload_len,
                            bool compressed, void *dst, size_t raw_len,
                            const char **why)
{
    unsigned long long frame;
    size_t n;

    STORAGE_ASSERT(dst != NULL || raw_len == 0);
    if (!compressed) {
        if (payload_len != raw_len) {
            return corrupt(why, "payload length mismatch");
        }
        if (raw_len > 0) {
            memcpy(dst, payload, raw_len);
        }
        return 0;
    }
    STORAGE_ASSERT(codec != NULL && codec->dctx != NULL);
    frame = ZSTD_getFrameContentSize(payload, payload_len);
    if (frame == ZSTD_CONTENTSIZE_ERROR || frame == ZSTD_CONTENTSIZE_UNKNOWN ||
        frame != raw_len) {
        return corrupt(why, "zstd frame header does not match raw length");
    }
    n = ZSTD_decompressDCtx(codec->dctx, dst, raw_len, payload, payload_len);
    if (ZSTD_isError(n) || n != raw_len) {
        return corrupt(why, "zstd frame does not decompress");
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Entry record (value in "log.<p>", key = index)
 *
 *      0         1         2         3         4                   8
 *     +---------+---------+---------+---------+-------------------+
 *     | version | kind=1  | flags   | type    | crc32c            |
 *     +---------+---------+---------+---------+-------------------+
 *   8 | term (u64)                                                |
 *     +-----------------------------------------------------------+
 *  16 | raw_len (u32)     | payload: raw_len bytes, or a zstd     |
 *     +-------------------+ frame (flags & ZSTD) that decompresses|
 *  20 | to exactly raw_len bytes                                  |
 *     +-----------------------------------------------------------+
 *
 * flags: bit 0 ZSTD; other bits must be 0. type: enum raft_entry_type.
 * --------------------------------------------------------------------- */

int storage__entry_encode(const struct storage__codec *codec, raft_index index,
                          raft_term term, uint8_t type, const void *payload,
                          size_t len, struct storage__buf *out)
{
    uint8_t key[STORAGE__KEY_ENTRY_BYTES];
    bool try_zstd;
    int packed;

    STORAGE_ASSERT(index > 0);
    STORAGE_ASSERT(term > 0);
    STORAGE_ASSERT(type >= RAFT_ENTRY_NORMAL && type <= RAFT_ENTRY_NOOP);
    STORAGE_ASSERT(payload != NULL || len == 0);
    if (len > STORAGE__PAYLOAD_BYTES_MAX) {
        return STORAGE_E_INVALID;
    }
    try_zstd = codec != NULL && codec->compress_bytes_min > 0 &&
               len >= codec->compress_bytes_min;
    packed = payload_pack(codec, try_zstd, STORAGE__ENTRY_HEADER_BYTES, payload,
                          len, out);
    if (packed < 0) {
        return packed;
    }
    record_preamble(out->base, STORAGE__RECORD_ENTRY,
                    packed ? STORAGE__FLAG_ZSTD : 0, type);
    put_u64(out->base + 8, term);
    put_u32(out->base + 16, (uint32_t)len);
    storage__key_entry(index, key);
    storage__record_seal(key, sizeof(key), out->base, out->len);
    return 0;
}

int storage__entry_decode(raft_index index, const void *val, size_t len,
                          struct storage__entry_view *view, const char **why)
{
    uint8_t key[STORAGE__KEY_ENTRY_BYTES];
    const uint8_t *v = val;
    int rv;

    STORAGE_ASSERT(view != NULL);
    STORAGE_ASSERT(v != NULL || len == 0);
    storage__key_entry(index, key);
    rv = record_check(key, sizeof(key), v, len, STORAGE__RECORD_ENTRY,
                      STORAGE__ENTRY_HEADER_BYTES, why);
    if (rv != 0) {
        return rv;
    }
    if ((v[2] & ~STORAGE__FLAG_ZSTD) != 0) {
        return corrupt(why, "unknown entry flags");
    }
    if (v[3] < RAFT_ENTRY_NORMAL || v[3] > RAFT_ENTRY_NOOP) {
        return corrupt(why, "unknown entry type");
    }
    view->compressed = (v[2] & STORAGE__FLAG_ZSTD) != 0;
    view->type = v[3];
    view->term = get_u64(v + 8);
    view->raw_len = get_u32(v + 16);
    view->payload = v + STORAGE__ENTRY_HEADER_BYTES;
    view->payload_len = len - STORAGE__ENTRY_HEADER_BYTES;
    if (view->term == 0) {
        return corrupt(why, "entry term is 0");
    }
    if (!view->compressed && view->payload_len != view->raw_len) {
        return corrupt(why, "entry payload length mismatch");
    }
    if (view->compressed && view->payload_len == 0) {
        return corrupt(why, "empty compressed entry payload");
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Hard state record (value in "meta", key = (partition, 2))
 *
 *      0         1         2         3         4                   8
 *     +---------+---------+---------+---------+-------------------+
 *     | version | kind=2  | flags   | 0       | crc32c            |
 *     +---------+---------+---------+---------+-------------------+
 *   8 | term (u64)                                                |
 *  16 | vote (u64)                                                |
 *  24 | forced_term (u64)                                         |
 *     +-------------------+---------------------------------------+
 *  32 | config_len (u16)  | forced_config: raft_config_encode()   |
 *     +-------------------+ bytes, config_len of them; present    |
 *  34 | iff flags & FORCED                                        |
 *     +-----------------------------------------------------------+
 * --------------------------------------------------------------------- */

int storage__hard_state_encode(uint32_t partition,
                               const struct raft_hard_state *hs,
                               struct storage__buf *out)
{
    uint8_t key[STORAGE__KEY_META_BYTES];
    int config_len = 0;
    int rv;

    STORAGE_ASSERT(hs != NULL);
    rv = storage__buf_reserve(out, STORAGE__HARD_STATE_BYTES_MIN +
                                       RAFT_CONFIG_ENCODED_MAX);
    if (rv != 0) {
        return rv;
    }
    if (hs->forced) {
        if (raft_config_validate(&hs->forced_config) != 0) {
            return STORAGE_E_INVALID;
        }
        config_len = raft_config_encode(&hs->forced_config, out->base + 34,
                                        RAFT_CONFIG_ENCODED_MAX);
        STORAGE_ASSERT(config_len > 0);
    }
    _Static_assert(RAFT_CONFIG_ENCODED_MAX <= UINT16_MAX,
                   "config_len is a u16");
    record_preamble(out->base, STORAGE__RECORD_HARD_STATE,
                    hs->forced ? STORAGE__FLAG_FORCED : 0, 0);
    put_u64(out->base + 8, hs->term);
    put_u64(out->base + 16, hs->vote);
    put_u64(out->base + 24, hs->forced_term);
    put_u16(out->base + 32, (uint16_t)config_len);
    out->len = STORAGE__HARD_STATE_BYTES_MIN + (size_t)config_len;
    storage__key_meta(partition, STORAGE__RECORD_HARD_STATE, key);
    storage__record_seal(key, sizeof(key), out->base, out->len);
    return 0;
}

int storage__hard_state_decode(uint32_t partition, const void *val, size_t len,
                               struct raft_hard_state *hs, const char **why)
{
    uint8_t key[STORAGE__KEY_META_BYTES];
    const uint8_t *v = val;
    size_t config_len;
    int rv;

    STORAGE_ASSERT(hs != NULL);
    storage__key_meta(partition, STORAGE__RECORD_HARD_STATE, key);
    rv = record_check(key, sizeof(key), v, len, STORAGE__RECORD_HARD_STATE,
                      STORAGE__HARD_STATE_BYTES_MIN, why);
    if (rv != 0) {
        return rv;
    }
    if ((v[2] & ~STORAGE__FLAG_FORCED) != 0 || v[3] != 0) {
        return corrupt(why, "unknown hard state flags");
    }
    config_len = get_u16(v + 32);
    if (len != STORAGE__HARD_STATE_BYTES_MIN + config_len) {
        return corrupt(why, "hard state length mismatch");
    }
    memset(hs, 0, sizeof(*hs));
    raft_config_init(&hs->forced_config);
    hs->term = get_u64(v + 8);
    hs->vote = get_u64(v + 16);
    hs->forced_term = get_u64(v + 24);
    hs->forced = (v[2] & STORAGE__FLAG_FORCED) != 0;
    if (hs->forced != (config_len > 0)) {
        return corrupt(why, "forced flag and configuration disagree");
    }
    if (hs->forced &&
        raft_config_decode(v + 34, config_len, &hs->forced_config) != 0) {
        return corrupt(why, "undecodable forced configuration");
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Snapshot metadata record (value in "meta", key = (partition, 3))
 *
 *      0         1         2         3         4                   8
 *     +---------+---------+---------+---------+-------------------+
 *     | version | kind=3  | 0       | 0       | crc32c            |
 *     +---------+---------+---------+---------+-------------------+
 *   8 | index (u64)                                               |
 *  16 | term (u64)                                                |
 *  24 | config_index (u64)                                        |
 *  32 | config_term (u64)                                         |
 *  40 | data_len (u64): raw snapshot bytes                        |
 *     +-----------------------------+-----------------------------+
 *  48 | data_crc (u32): CRC32C of   | chunk_count (u32)           |
 *     | the raw bytes               |                             |
 *     +-----------------------------+-------------+---------------+
 *  56 | chunk_bytes (u32)           | config_len  | config ...    |
 *     |                             | (u16)       | (raft_config_ |
 *     +-----------------------------+-------------+ encode bytes) |
 *  62 +-------------------------------------------+---------------+
 *
 * chunk_count == ceil(data_len / chunk_bytes); chunk i holds raw bytes
 * [i * chunk_bytes, min(data_len, (i + 1) * chunk_bytes)).
 * --------------------------------------------------------------------- */

int storage__snapshot_encode(uint32_t partition,
                             const struct storage__snapshot_record *rec,
                             struct storage__buf *out)
{
    uint8_t key[STORAGE__KEY_META_BYTES];
    int config_len;
    int rv;

    STORAGE_ASSERT(rec != NULL);
    STORAGE_ASSERT(rec->meta.index > 0);
    STORAGE_ASSERT(rec->chunk_bytes > 0);
    rv = storage__buf_reserve(out, STORAGE__SNAPSHOT_BYTES_MIN +
                                       RAFT_CONFIG_ENCODED_MAX);
    if (rv != 0) {
        return rv;
    }
    config_len = raft_config_encode(&rec->meta.config, out->base + 62,
                                    RAFT_CONFIG_ENCODED_MAX);
    STORAGE_ASSERT(config_len > 0);
    record_preamble(out->base, STORAGE__RECORD_SNAPSHOT, 0, 0);
    put_u64(out->base + 8, rec->meta.index);
    put_u64(out->base + 16, rec->meta.term);
    put_u64(out->base + 24, rec->meta.config_index);
    put_u64(out->base + 32, rec->meta.config_term);
    put_u64(out->base + 40, rec->data_len);
    put_u32(out->base + 48, rec->data_crc);
    put_u32(out->base + 52, rec->chunk_count);
    put_u32(out->base + 56, rec->chunk_bytes);
    put_u16(out->base + 60, (uint16_t)config_len);
    out->len = STORAGE__SNAPSHOT_BYTES_MIN + (size_t)config_len;
    storage__key_meta(partition, STORAGE__RECORD_SNAPSHOT, key);
    storage__record_seal(key, sizeof(key), out->base, out->len);
    return 0;
}

int storage__snapshot_decode(uint32_t partition, const void *val, size_t len,
                             struct storage__snapshot_record *rec,
                             const char **why)
{
    uint8_t key[STORAGE__KEY_META_BYTES];
    const uint8_t *v = val;
    size_t config_len;
    uint64_t chunks;
    int rv;

    STORAGE_ASSERT(rec != NULL);
    storage__key_meta(partition, STORAGE__RECORD_SNAPSHOT, key);
    rv = record_check(key, sizeof(key), v, len, STORAGE__RECORD_SNAPSHOT,
                      STORAGE__SNAPSHOT_BYTES_MIN, why);
    if (rv != 0) {
        return rv;
    }
    if (v[2] != 0 || v[3] != 0) {
        return corrupt(why, "unknown snapshot flags");
    }
    config_len = get_u16(v + 60);
    if (len != STORAGE__SNAPSHOT_BYTES_MIN + config_len) {
        return corrupt(why, "snapshot record length mismatch");
    }
    memset(rec, 0, sizeof(*rec));
    rec->meta.index = get_u64(v + 8);
    rec->meta.term = get_u64(v + 16);
    rec->meta.config_index = get_u64(v + 24);
    rec->meta.config_term = get_u64(v + 32);
    rec->data_len = get_u64(v + 40);
    rec->data_crc = get_u32(v + 48);
    rec->chunk_count = get_u32(v + 52);
    rec->chunk_bytes = get_u32(v + 56);
    if (rec->meta.index == 0 || rec->meta.term == 0 ||
        rec->meta.config_index > rec->meta.index) {
        return corrupt(why, "snapshot index, term or config index invalid");
    }
    if (rec->chunk_bytes == 0 || rec->chunk_bytes > STORAGE__CHUNK_BYTES) {
        return corrupt(why, "snapshot chunk size invalid");
    }
    chunks = rec->data_len / rec->chunk_bytes +
             (rec->data_len % rec->chunk_bytes != 0 ? 1 : 0);
    if (chunks != rec->chunk_count) {
        return corrupt(why, "snapshot chunk count does not match length");
    }
    if (raft_config_decode(v + 62, config_len, &rec->meta.config) != 0) {
        return corrupt(why, "undecodable snapshot configuration");
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Snapshot chunk record (value in "snap", key = (partition, chunk no.))
 *
 *      0         1         2         3         4                   8
 *     +---------+---------+---------+---------+-------------------+
 *     | version | kind=4  | flags   | 0       | crc32c            |
 *     +---------+---------+---------+---------+-------------------+
 *   8 | raw_len (u32)     | payload: raw_len bytes, or a zstd     |
 *     +-------------------+ frame (flags & ZSTD)                  |
 *  12 +-----------------------------------------------------------+
 * --------------------------------------------------------------------- */

int storage__chunk_encode(const struct storage__codec *codec,
                          uint32_t partition, uint32_t chunk, const void *data,
                          size_t len, struct storage__buf *out)
{
    uint8_t key[STORAGE__KEY_CHUNK_BYTES];
    int packed;

    STORAGE_ASSERT(data != NULL);
    if (len == 0 || len > STORAGE__CHUNK_BYTES) {
        return STORAGE_E_INVALID;
    }
    packed =
        payload_pack(codec, true, STORAGE__CHUNK_HEADER_BYTES, data, len, out);
    if (packed < 0) {
        return packed;
    }
    record_preamble(out->base, STORAGE__RECORD_CHUNK,
                    packed ? STORAGE__FLAG_ZSTD : 0, 0);
    put_u32(out->base + 8, (uint32_t)len);
    storage__key_chunk(partition, chunk, key);
    storage__record_seal(key, sizeof(key), out->base, out->len);
    return 0;
}

int storage__chunk_decode(uint32_t partition, uint32_t chunk, const void *val,
                          size_t len, struct storage__chunk_view *view,
                          const char **why)
{
    uint8_t key[STORAGE__KEY_CHUNK_BYTES];
    const uint8_t *v = val;
    int rv;

    STORAGE_ASSERT(view != NULL);
    storage__key_chunk(partition, chunk, key);
    rv = record_check(key, sizeof(key), v, len, STORAGE__RECORD_CHUNK,
                      STORAGE__CHUNK_HEADER_BYTES, why);
    if (rv != 0) {
        return rv;
    }
    if ((v[2] & ~STORAGE__FLAG_ZSTD) != 0 || v[3] != 0) {
        return corrupt(why, "unknown chunk flags");
    }
    view->compressed = (v[2] & STORAGE__FLAG_ZSTD) != 0;
    view->raw_len = get_u32(v + 8);
    view->payload = v + STORAGE__CHUNK_HEADER_BYTES;
    view->payload_len = len - STORAGE__CHUNK_HEADER_BYTES;
    if (view->raw_len == 0 || view->raw_len > STORAGE__CHUNK_BYTES) {
        return corrupt(why, "chunk length invalid");
    }
    if (!view->compressed && view->payload_len != view->raw_len) {
        return corrupt(why, "chunk payload length mismatch");
    }
    if (view->compressed && view->payload_len == 0) {
        return corrupt(why, "empty compressed chunk");
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Commit hint record (value in "meta", key = (partition, 5))
 *
 *      0         1         2         3         4                   8
 *     +---------+---------+---------+---------+-------------------+
 *     | version | kind=5  | 0       | 0       | crc32c            |
 *     +---------+---------+---------+---------+-------------------+
 *   8 | commit (u64)                                              |
 *  16 +-----------------------------------------------------------+
 * --------------------------------------------------------------------- */

int storage__commit_encode(uint32_t partition, raft_index commit,
                           struct storage__buf *out)
{
    uint8_t key[STORAGE__KEY_META_BYTES];
    int rv;

    STORAGE_ASSERT(commit > 0);
    rv = storage__buf_reserve(out, STORAGE__COMMIT_BYTES);
    if (rv != 0) {
        return rv;
    }
    record_preamble(out->base, STORAGE__RECORD_COMMIT, 0, 0);
    put_u64(out->base + 8, commit);
    out->len = STORAGE__COMMIT_BYTES;
    storage__key_meta(partition, STORAGE__RECORD_COMMIT, key);
    storage__record_seal(key, sizeof(key), out->base, out->len);
    return 0;
}

int storage__commit_decode(uint32_t partition, const void *val, size_t len,
                           raft_index *commit, const char **why)
{
    uint8_t key[STORAGE__KEY_META_BYTES];
    const uint8_t *v = val;
    int rv;

    STORAGE_ASSERT(commit != NULL);
    storage__key_meta(partition, STORAGE__RECORD_COMMIT, key);
    rv = record_check(key, sizeof(key), v, len, STORAGE__RECORD_COMMIT,
                      STORAGE__COMMIT_BYTES, why);
    if (rv != 0) {
        return rv;
    }
    if (len != STORAGE__COMMIT_BYTES || v[2] != 0 || v[3] != 0) {
        return corrupt(why, "commit record malformed");
    }
    *commit = get_u64(v + 8);
    if (*commit == 0) {
        return corrupt(why, "commit hint is 0");
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Format stamp (value in "meta", key = 0x00), written once at creation
 *
 *      0         1         2         3         4                   8
 *     +---------+---------+---------+---------+-------------------+
 *     | version | kind=6  | 0       | 0       | crc32c            |
 *     +---------+---------+---------+---------+-------------------+
 *   8 | format (u32) = 1  |
 *  12 +-------------------+
 * --------------------------------------------------------------------- */

static const uint8_t format_key[STORAGE__KEY_FORMAT_BYTES] = {0};

int storage__format_encode(struct storage__buf *out)
{
    int rv = storage__buf_reserve(out, STORAGE__FORMAT_BYTES);
    if (rv != 0) {
        return rv;
    }
    record_preamble(out->base, STORAGE__RECORD_FORMAT, 0, 0);
    put_u32(out->base + 8, STORAGE__FORMAT);
    out->len = STORAGE__FORMAT_BYTES;
    storage__record_seal(format_key, sizeof(format_key), out->base, out->len);
    return 0;
}

int storage__format_decode(const void *val, size_t len, uint32_t *format,
                           const char **why)
{
    const uint8_t *v = val;
    int rv;

    STORAGE_ASSERT(format != NULL);
    rv = record_check(format_key, sizeof(format_key), v, len,
                      STORAGE__RECORD_FORMAT, STORAGE__FORMAT_BYTES, why);
    if (rv != 0) {
        return rv;
    }
    if (len != STORAGE__FORMAT_BYTES || v[2] != 0 || v[3] != 0) {
        return corrupt(why, "format record malformed");
    }
    *format = get_u32(v + 8);
    return 0;
}
