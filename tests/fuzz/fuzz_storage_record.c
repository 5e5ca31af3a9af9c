/* fuzz_storage_record.c: fuzz target for the LMDB storage record codec
 * (broker/storage_record.c).
 *
 * Input layout: byte 0 picks the record kind, bytes 1..8 the key (entry
 * index, or partition and chunk number), the rest is the stored value.
 * Each input is
 *   1. decoded as is (the checksum almost always rejects it: that path
 *      must simply not crash);
 *   2. sealed with the right checksum for its key and decoded again, so the
 *      structural checks and zstd behind the checksum are reached; any value
 *      the decoder accepts must decompress without crashing and re-encode
 *      to the same bytes (the decoders are strict and the format
 *      canonical), or, where a raft configuration is embedded, re-encode
 *      to a fixed point;
 *   3. used as a payload: encoded (with compression allowed), decoded and
 *      unpacked, which must give the payload back. */
#include <stdlib.h>
#include <string.h>

#include "broker/storage_record.h"
#include "fuzz.h"

#define FUZZ_RAW_BYTES_MAX (1u << 20) /* cap on decompression buffers */

static struct storage__codec fuzz_codec;

static void fuzz_codec_init(void)
{
    if (fuzz_codec.cctx == NULL) {
        fuzz_codec.cctx = ZSTD_createCCtx();
        fuzz_codec.dctx = ZSTD_createDCtx();
        fuzz_codec.level = 1;
        fuzz_codec.compress_bytes_min = 1;
        if (fuzz_codec.cctx == NULL || fuzz_codec.dctx == NULL) {
            abort();
        }
    }
}

static uint64_t fuzz_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void fuzz_check(bool cond)
{
    if (!cond) {
        abort();
    }
}

/* The decoded entry must unpack and, if stored raw, re-encode to val. */
static void fuzz_entry(raft_index index, const uint8_t *val, size_t len)
{
    struct storage__codec plain = fuzz_codec;
    struct storage__entry_view view;
    struct storage__buf out = {NULL, 0, 0};
    uint8_t *raw;

    if (storage__entry_decode(index, val, len, &view, NULL) != 0) {
        return;
    }
    fuzz_check(view.term > 0);
    if (view.raw_len > FUZZ_RAW_BYTES_MAX) {
        return;
    }
    raw = malloc(view.raw_len + 1u);
    fuzz_check(raw != NULL);
    if (storage__payload_unpack(&fuzz_codec, view.payload, view.payload_len,
                                view.compressed, raw, view.raw_len,
                                NULL) == 0 &&
        !view.compressed && index > 0) {
        plain.compress_bytes_min = 0;
        fuzz_check(storage__entry_encode(&plain, index, view.term, view.type,
                                         raw, view.raw_len, &out) == 0);
        fuzz_check(out.len == len);
        fuzz_check(memcmp(out.base, val, len) == 0);
    }
    free(raw);
    storage__buf_free(&out);
}

static void fuzz_chunk(uint32_t partition, uint32_t chunk, const uint8_t *val,
                       size_t len)
{
    struct storage__chunk_view view;
    uint8_t *raw;

    if (storage__chunk_decode(partition, chunk, val, len, &view, NULL) != 0) {
        return;
    }
    fuzz_check(view.raw_len > 0 && view.raw_len <= STORAGE__CHUNK_BYTES);
    raw = malloc(view.raw_len);
    fuzz_check(raw != NULL);
    (void)storage__payload_unpack(&fuzz_codec, view.payload, view.payload_len,
                                  view.compressed, raw, view.raw_len, NULL);
    free(raw);
}

static void fuzz_hard_state(uint32_t partition, const uint8_t *val, size_t len)
{
    struct raft_hard_state hs;
    struct raft_hard_state again;
    struct storage__buf a = {NULL, 0, 0};
    struct storage__buf b = {NULL, 0, 0};

    if (storage__hard_state_decode(partition, val, len, &hs, NULL) != 0) {
        return;
    }
    fuzz_check(storage__hard_state_encode(partition, &hs, &a) == 0);
    fuzz_check(storage__hard_state_decode(partition, a.base, a.len, &again,
                                          NULL) == 0);
    fuzz_check(storage__hard_state_encode(partition, &again, &b) == 0);
    fuzz_check(a.len == b.len && memcmp(a.base, b.base, a.len) == 0);
    fuzz_check(hs.term == again.term && hs.vote == again.vote &&
               hs.forced == again.forced);
    storage__buf_free(&a);
    storage__buf_free(&b);
}

static void fuzz_snapshot(uint32_t partition, const uint8_t *val, size_t len)
{
    struct storage__snapshot_record rec;
    struct storage__snapshot_record again;
    struct storage__buf a = {NULL, 0, 0};
    struct storage__buf b = {NULL, 0, 0};

    if (storage__snapshot_decode(partition, val, len, &rec, NULL) != 0) {
        return;
    }
    fuzz_check(storage__snapshot_encode(partition, &rec, &a) == 0);
    fuzz_check(
        storage__snapshot_decode(partition, a.base, a.len, &again, NULL) == 0);
    fuzz_check(storage__snapshot_encode(partition, &again, &b) == 0);
    fuzz_check(a.len == b.len && memcmp(a.base, b.base, a.len) == 0);
    fuzz_check(rec.meta.index == again.meta.index &&
               rec.data_len == again.data_len &&
               rec.chunk_count == again.chunk_count);
    storage__buf_free(&a);
    storage__buf_free(&b);
}

static void fuzz_commit(uint32_t partition, const uint8_t *val, size_t len)
{
    struct storage__buf out = {NULL, 0, 0};
    raft_index commit;

    if (storage__commit_decode(partition, val, len, &commit, NULL) != 0) {
        return;
    }
    fuzz_check(storage__commit_encode(partition, commit, &out) == 0);
    fuzz_check(out.len == len && memcmp(out.base, val, len) == 0);
    storage__buf_free(&out);
}

/* Decodes val as the record kind picked by the input. */
static void fuzz_decode(uint8_t pick, const uint8_t key[8], const uint8_t *val,
                        size_t len)
{
    uint64_t k = fuzz_u64(key);
    uint32_t partition = (uint32_t)(k >> 32);
    uint32_t chunk = (uint32_t)k;
    uint32_t format;

    switch (pick % 6) {
    case 0:
        fuzz_entry(k, val, len);
        break;
    case 1:
        fuzz_hard_state(partition, val, len);
        break;
    case 2:
        fuzz_snapshot(partition, val, len);
        break;
    case 3:
        fuzz_chunk(partition, chunk, val, len);
        break;
    case 4:
        fuzz_commit(partition, val, len);
        break;
    default:
        (void)storage__format_decode(val, len, &format, NULL);
        break;
    }
}

/* Seals val with the checksum its key would have. */
static void fuzz_seal(uint8_t pick, const uint8_t key[8], uint8_t *val,
                      size_t len)
{
    uint64_t k = fuzz_u64(key);
    uint8_t buf[8];
    static const uint8_t kinds[6] = {
        STORAGE__RECORD_ENTRY,    STORAGE__RECORD_HARD_STATE,
        STORAGE__RECORD_SNAPSHOT, STORAGE__RECORD_CHUNK,
        STORAGE__RECORD_COMMIT,   STORAGE__RECORD_FORMAT,
    };

    if (len < STORAGE__RECORD_HEADER_BYTES) {
        return;
    }
    /* Mostly keep the right version and kind, to get past them. */
    if ((pick & 0x80u) == 0) {
        val[0] = STORAGE__RECORD_VERSION;
        val[1] = kinds[pick % 6];
    }
    switch (pick % 6) {
    case 0:
        storage__key_entry(k, buf);
        storage__record_seal(buf, 8, val, len);
        break;
    case 3:
        storage__key_chunk((uint32_t)(k >> 32), (uint32_t)k, buf);
        storage__record_seal(buf, 8, val, len);
        break;
    case 5:
        buf[0] = 0;
        storage__record_seal(buf, 1, val, len);
        break;
    default:
        storage__key_meta((uint32_t)(k >> 32), kinds[pick % 6], buf);
        storage__record_seal(buf, STORAGE__KEY_META_BYTES, val, len);
        break;
    }
}

/* Encodes the input as an entry payload and reads it back. */
static void fuzz_roundtrip(const uint8_t *data, size_t size, uint8_t pick)
{
    struct storage__buf out = {NULL, 0, 0};
    struct storage__entry_view view;
    raft_index index = (raft_index)size + 1;
    uint8_t type = (uint8_t)(RAFT_ENTRY_NORMAL + pick % 3);
    uint8_t *raw;

    fuzz_check(storage__entry_encode(&fuzz_codec, index, 5, type, data, size,
                                     &out) == 0);
    fuzz_check(storage__entry_decode(index, out.base, out.len, &view, NULL) ==
               0);
    fuzz_check(view.raw_len == size && view.type == type && view.term == 5);
    raw = malloc(size + 1);
    fuzz_check(raw != NULL);
    fuzz_check(storage__payload_unpack(&fuzz_codec, view.payload,
                                       view.payload_len, view.compressed, raw,
                                       size, NULL) == 0);
    fuzz_check(size == 0 || memcmp(raw, data, size) == 0);
    /* The stored record under another index must be rejected. */
    fuzz_check(storage__entry_decode(index + 1, out.base, out.len, &view,
                                     NULL) == STORAGE_E_CORRUPT);
    free(raw);
    storage__buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t key[8] = {0};
    uint8_t *val;
    size_t len;

    fuzz_codec_init();
    if (size < 1) {
        return 0;
    }
    memcpy(key, data + 1, size - 1 < 8 ? size - 1 : 8);
    len = size > 9 ? size - 9 : 0;
    val = malloc(len + 1);
    fuzz_check(val != NULL);
    if (len > 0) {
        memcpy(val, data + 9, len);
    }
    fuzz_decode(data[0], key, val, len);
    fuzz_seal(data[0], key, val, len);
    fuzz_decode(data[0], key, val, len);
    fuzz_roundtrip(data, size, data[0]);
    free(val);
    return 0;
}
