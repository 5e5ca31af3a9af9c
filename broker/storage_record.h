/* storage_record.h: private to broker/storage_*.c (and tests/fuzz): the
 * on-disk record codec of the LMDB storage, its keys and its checksum.
 *
 * Encoders turn Raft state into LMDB values (drawn in storage_record.c);
 * decoders validate a value read back (version, kind, reserved bytes,
 * lengths, CRC32C over key and value) and return STORAGE_E_CORRUPT with a
 * static reason string, never crash, never read past the value. The codec
 * does no I/O; it only needs zstd contexts, owned by the caller. */
#ifndef TANDEM_BROKER_STORAGE_RECORD_H
#define TANDEM_BROKER_STORAGE_RECORD_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zstd.h>

#include "broker/storage.h"
#include "raft/raft.h"

/* Programmer errors in the storage module. */
#define STORAGE_ASSERT(cond) assert(cond)

/* The version byte every record starts with. */
#define STORAGE__RECORD_VERSION 1

/* The second byte of every record. */
enum storage__record_kind {
    STORAGE__RECORD_ENTRY = 1,      /* a log entry (in "log.<p>") */
    STORAGE__RECORD_HARD_STATE = 2, /* term, vote, forced config ("meta") */
    STORAGE__RECORD_SNAPSHOT = 3,   /* snapshot metadata ("meta") */
    STORAGE__RECORD_CHUNK = 4,      /* a slice of snapshot bytes ("snap") */
    STORAGE__RECORD_COMMIT = 5,     /* commit hint ("meta") */
    STORAGE__RECORD_FORMAT = 6,     /* format stamp ("meta", 1-byte key) */
};

/* Flag bits (third byte). */
#define STORAGE__FLAG_ZSTD 0x01u   /* ENTRY, CHUNK: payload is a zstd frame */
#define STORAGE__FLAG_FORCED 0x01u /* HARD_STATE: forced config present */

/* Every record starts with version, kind, flags, one kind-specific byte
 * and the CRC32C. */
#define STORAGE__RECORD_HEADER_BYTES 8
#define STORAGE__ENTRY_HEADER_BYTES 20
#define STORAGE__HARD_STATE_BYTES_MIN 34
#define STORAGE__SNAPSHOT_BYTES_MIN 62
#define STORAGE__CHUNK_HEADER_BYTES 12
#define STORAGE__COMMIT_BYTES 16
#define STORAGE__FORMAT_BYTES 12

/* The storage format written by this code (in the FORMAT record). */
#define STORAGE__FORMAT 1

/* The largest payload an entry or chunk record holds (raw_len is u32). */
#define STORAGE__PAYLOAD_BYTES_MAX ((size_t)UINT32_MAX)

/* Raw snapshot bytes per chunk record. Small enough that a compressed
 * chunk needs a short run of overflow pages (LMDB allocates overflow runs
 * contiguously, which degrades with freelist fragmentation), large enough
 * that a 1 GiB snapshot is 4096 records. */
#define STORAGE__CHUNK_BYTES (256u * 1024u)

/* Key sizes. */
#define STORAGE__KEY_ENTRY_BYTES 8 /* index, big-endian */
#define STORAGE__KEY_META_BYTES 5  /* partition BE32, kind */
#define STORAGE__KEY_CHUNK_BYTES 8 /* partition BE32, chunk number BE32 */
#define STORAGE__KEY_FORMAT_BYTES 1

/* A growable byte buffer. */
struct storage__buf {
    uint8_t *base;
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
};

/* Makes room for cap bytes in total (len unchanged). Returns 0 or
 * STORAGE_E_NOMEM. */
int storage__buf_reserve(struct storage__buf *buf, size_t cap);
void storage__buf_free(struct storage__buf *buf);

/* Compression state. Contexts are owned by the caller and used by one
 * thread at a time. cctx NULL: nothing is compressed. */
struct storage__codec {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    int level;
    uint32_t compress_bytes_min; /* entries; 0 = never compress entries */
};

/* CRC32C (Castagnoli), continuing from crc (start with 0). */
uint32_t storage__crc32c(uint32_t crc, const void *buf, size_t len);

/* Keys. */
void storage__key_entry(raft_index index,
                        uint8_t out[STORAGE__KEY_ENTRY_BYTES]);
raft_index
storage__key_entry_index(const uint8_t key[STORAGE__KEY_ENTRY_BYTES]);
void storage__key_meta(uint32_t partition, uint8_t kind,
                       uint8_t out[STORAGE__KEY_META_BYTES]);
void storage__key_chunk(uint32_t partition, uint32_t chunk,
                        uint8_t out[STORAGE__KEY_CHUNK_BYTES]);

/* Writes the CRC32C of (key, value) into value bytes 4..7. len >= 8. Used
 * by the encoders, and by tests and the fuzz target to forge records. */
void storage__record_seal(const void *key, size_t key_len, void *val,
                          size_t len);

/* ------------------------------------------------------------------------
 * Entry records
 * --------------------------------------------------------------------- */

struct storage__entry_view {
    raft_term term;
    uint8_t type;
    bool compressed;
    uint32_t raw_len;       /* payload size once decompressed */
    const uint8_t *payload; /* borrowed from the value */
    size_t payload_len;     /* stored bytes */
};

/* Encodes entry (index, term, type, payload) into out (replacing its
 * contents), compressed when codec allows and it saves >= 1/8. Returns 0,
 * STORAGE_E_INVALID (len over STORAGE__PAYLOAD_BYTES_MAX), STORAGE_E_NOMEM.
 */
int storage__entry_encode(const struct storage__codec *codec, raft_index index,
                          raft_term term, uint8_t type, const void *payload,
                          size_t len, struct storage__buf *out);

/* Validates an entry value stored under index and describes it in *view
 * (borrowing from val). Returns 0 or STORAGE_E_CORRUPT (*why set if why is
 * not NULL). */
int storage__entry_decode(raft_index index, const void *val, size_t len,
                          struct storage__entry_view *view, const char **why);

/* Copies or decompresses a payload (entry or chunk) into dst, which holds
 * raw_len bytes. Returns 0 or STORAGE_E_CORRUPT (undecodable frame, or the
 * frame does not decompress to exactly raw_len bytes). */
int storage__payload_unpack(const struct storage__codec *codec,
                            const uint8_t *payload, size_t payload_len,
                            bool compressed, void *dst, size_t raw_len,
                            const char **why);

/* ------------------------------------------------------------------------
 * Meta records
 * --------------------------------------------------------------------- */

int storage__hard_state_encode(uint32_t partition,
                               const struct raft_hard_state *hs,
                               struct storage__buf *out);
int storage__hard_state_decode(uint32_t partition, const void *val, size_t len,
                               struct raft_hard_state *hs, const char **why);

/* A snapshot metadata record: the raft metadata plus where its bytes are. */
struct storage__snapshot_record {
    struct raft_snapshot_meta meta;
    uint64_t data_len;    /* raw snapshot bytes */
    uint32_t data_crc;    /* CRC32C of the raw bytes */
    uint32_t chunk_count; /* chunk records 0..chunk_count-1 in "snap" */
    uint32_t chunk_bytes; /* raw bytes per chunk (the last may be short) */
};

int storage__snapshot_encode(uint32_t partition,
                             const struct storage__snapshot_record *rec,
                             struct storage__buf *out);
int storage__snapshot_decode(uint32_t partition, const void *val, size_t len,
                             struct storage__snapshot_record *rec,
                             const char **why);

struct storage__chunk_view {
    bool compressed;
    uint32_t raw_len;
    const uint8_t *payload; /* borrowed from the value */
    size_t payload_len;
};

/* Encodes one snapshot chunk, compressed when codec->cctx is set and it
 * helps. Returns 0, STORAGE_E_INVALID (len 0 or over
 * STORAGE__CHUNK_BYTES), STORAGE_E_NOMEM. */
int storage__chunk_encode(const struct storage__codec *codec,
                          uint32_t partition, uint32_t chunk, const void *data,
                          size_t len, struct storage__buf *out);
int storage__chunk_decode(uint32_t partition, uint32_t chunk, const void *val,
                          size_t len, struct storage__chunk_view *view,
                          const char **why);

int storage__commit_encode(uint32_t partition, raft_index commit,
                           struct storage__buf *out);
int storage__commit_decode(uint32_t partition, const void *val, size_t len,
                           raft_index *commit, const char **why);

int storage__format_encode(struct storage__buf *out);
int storage__format_decode(const void *val, size_t len, uint32_t *format,
                           const char **why);

#endif /* TANDEM_BROKER_STORAGE_RECORD_H */
