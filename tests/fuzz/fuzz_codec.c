/* fuzz_codec.c: fuzz target for broker/codec.c (frames between brokers).
 *
 * Input byte 0 picks a mode; the rest is the payload.
 *
 * Stream mode (bit 7 clear): the payload is a byte stream from a peer. It
 * is fed to a splitter in chunks (bits 0-3: chunk size, 0 = all at once)
 * with a frame limit chosen by bits 4-5 and an arena that is small or
 * generous (bit 6). Every frame cut out is decoded. Whatever decodes must
 * pass codec_raft_check(), re-encode, decode to the same message, and
 * re-encode to the same bytes (the encoding is canonical).
 *
 * Build mode (bit 7 set): the payload describes a message (type, ids,
 * scalars, entries with payloads, a snapshot configuration), possibly an
 * invalid one. If codec_raft_check() accepts it, encoding must succeed and
 * the frame must survive the splitter (chunk size from the input) and the
 * decoder unchanged; otherwise encoding must refuse it.
 *
 * Any crash, sanitizer report or failed check aborts. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "broker/codec.h"
#include "fuzz.h"

#define FUZZ_ENTRIES_MAX 8

static void fuzz_check(int cond)
{
    if (!cond) {
        abort();
    }
}

static bool buf_equal(struct raft_buf a, struct raft_buf b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

static bool config_equal(const struct raft_config *a,
                         const struct raft_config *b)
{
    if (a->count != b->count || a->old_count != b->old_count) {
        return false;
    }
    for (uint32_t i = 0; i < a->count; i++) {
        if (a->members[i].id != b->members[i].id ||
            a->members[i].role != b->members[i].role ||
            a->members[i].priority != b->members[i].priority) {
            return false;
        }
    }
    for (uint32_t i = 0; i < a->old_count; i++) {
        if (a->old_voters[i] != b->old_voters[i]) {
            return false;
        }
    }
    return true;
}

static bool message_equal(const struct raft_message *a,
                          const struct raft_message *b)
{
    if (a->type != b->type || a->from != b->from || a->to != b->to ||
        a->term != b->term || a->index != b->index ||
        a->log_term != b->log_term || a->commit != b->commit ||
        a->hint_index != b->hint_index || a->hint_term != b->hint_term ||
        a->reject != b->reject || a->transfer != b->transfer ||
        a->done != b->done || a->entry_count != b->entry_count ||
        a->offset != b->offset || a->total != b->total ||
        !buf_equal(a->data, b->data) ||
        a->snapshot.index != b->snapshot.index ||
        a->snapshot.term != b->snapshot.term ||
        a->snapshot.config_index != b->snapshot.config_index ||
        a->snapshot.config_term != b->snapshot.config_term ||
        !config_equal(&a->snapshot.config, &b->snapshot.config)) {
        return false;
    }
    for (size_t i = 0; i < a->entry_count; i++) {
        const struct raft_entry *x = &a->entries[i];
        const struct raft_entry *y = &b->entries[i];
        if (x->term != y->term || x->index != y->index || x->type != y->type ||
            !buf_equal(x->buf, y->buf)) {
            return false;
        }
    }
    return true;
}

/* Checks everything that must hold for a frame that decoded. */
static void fuzz_decoded(const struct codec_frame *f)
{
    struct codec_arena arena;
    struct codec_frame again;
    struct codec_frame third;
    struct raft_buf enc;
    struct raft_buf enc2;
    int rv;

    fuzz_check(f->body == CODEC_BODY_RAFT || f->body == CODEC_BODY_HELLO);
    codec_arena_init(&arena, CODEC_ARENA_BYTES_FOR(CODEC_FRAME_BYTES_DEFAULT));
    if (f->body == CODEC_BODY_HELLO) {
        fuzz_check(f->partition == 0);
        rv = codec_hello_encode(&arena, &f->hello, &enc);
        fuzz_check(rv == 0);
        rv = codec_frame_decode(&arena, enc.base, enc.len, &again, NULL);
        fuzz_check(rv == 0);
        fuzz_check(again.body == CODEC_BODY_HELLO);
        fuzz_check(again.hello.protocol_version == f->hello.protocol_version);
        fuzz_check(again.hello.node_id == f->hello.node_id);
        fuzz_check(strcmp(again.hello.cluster_name, f->hello.cluster_name) ==
                   0);
        codec_arena_close(&arena);
        return;
    }
    fuzz_check(codec_raft_check(&f->raft, NULL) == 0);
    rv = codec_raft_encode(&arena, f->partition, &f->raft,
                           CODEC_FRAME_BYTES_LIMIT, &enc);
    fuzz_check(rv == 0);
    rv = codec_frame_decode(&arena, enc.base, enc.len, &again, NULL);
    fuzz_check(rv == 0);
    fuzz_check(again.partition == f->partition);
    fuzz_check(message_equal(&f->raft, &again.raft));
    rv = codec_raft_encode(&arena, again.partition, &again.raft,
                           CODEC_FRAME_BYTES_LIMIT, &enc2);
    fuzz_check(rv == 0);
    fuzz_check(enc.len == enc2.len);
    fuzz_check(memcmp(enc.base, enc2.base, enc.len) == 0);
    rv = codec_frame_decode(&arena, enc2.base, enc2.len, &third, NULL);
    fuzz_check(rv == 0);
    codec_arena_close(&arena);
}

static void fuzz_stream(uint8_t mode, const uint8_t *data, size_t size)
{
    static const size_t limits[4] = {64, 1024, 65536,
                                     CODEC_FRAME_BYTES_DEFAULT};
    size_t step = (size_t)(mode & 0x0f);
    size_t limit = limits[(mode >> 4) & 3];
    struct codec_splitter s;
    struct codec_arena arena;
    size_t off = 0;

    if (step == 0) {
        step = size > 0 ? size : 1;
    }
    codec_splitter_init(&s, limit);
    codec_arena_init(&arena,
                     (mode & 0x40) != 0 ? 8192 : CODEC_ARENA_BYTES_FOR(limit));
    while (off < size) {
        size_t chunk = size - off < step ? size - off : step;
        const uint8_t *p = data + off;
        off += chunk;
        while (chunk > 0) {
            struct raft_buf frame;
            struct codec_frame out;
            char errmsg[CODEC_ERRMSG_SIZE];
            size_t used;
            int rv = codec_splitter_feed(&s, p, chunk, &used, &frame);
            fuzz_check(used <= chunk);
            if (rv < 0) {
                fuzz_check(rv == CODEC_E_TOO_BIG || rv == CODEC_E_NOMEM);
                fuzz_check(s.errmsg[0] != '\0');
                /* Sticky. */
                fuzz_check(codec_splitter_feed(&s, p, chunk, &used, &frame) ==
                           rv);
                goto out;
            }
            p += used;
            chunk -= used;
            if (rv == 0) {
                fuzz_check(chunk == 0);
                break;
            }
            fuzz_check(rv == 1);
            fuzz_check(frame.len >= CODEC_PREFIX_BYTES);
            fuzz_check(frame.len <= CODEC_PREFIX_BYTES + limit);
            errmsg[0] = '\0';
            rv =
                codec_frame_decode(&arena, frame.base, frame.len, &out, errmsg);
            if (rv == 0) {
                fuzz_decoded(&out);
            } else {
                fuzz_check(rv == CODEC_E_MALFORMED || rv == CODEC_E_NOMEM);
                fuzz_check(errmsg[0] != '\0');
                fuzz_check(out.body == 0);
            }
            fuzz_check(arena.bytes <= arena.bytes_max);
            codec_arena_reset(&arena);
        }
    }
out:
    codec_splitter_close(&s);
    codec_arena_close(&arena);
}

/* Reads the payload as a sequence of numbers; zeros once exhausted. */
struct reader {
    const uint8_t *p;
    size_t n;
};

static uint8_t r8(struct reader *r)
{
    uint8_t v = 0;
    if (r->n > 0) {
        v = *r->p++;
        r->n--;
    }
    return v;
}

/* A 64-bit value: small, large or extreme, as selected by a tag byte. */
static uint64_t r64(struct reader *r)
{
    uint8_t tag = r8(r);
    uint64_t v = 0;
    switch (tag & 3) {
    case 0:
        return tag >> 2;
    case 1:
        for (int i = 0; i < 8; i++) {
            v = v << 8 | r8(r);
        }
        return v;
    case 2:
        return UINT64_MAX - (tag >> 2);
    default:
        return (uint64_t)r8(r) << 8 | r8(r);
    }
}

static void fuzz_build(const uint8_t *data, size_t size)
{
    struct reader r = {data, size};
    struct raft_message m;
    struct raft_entry entries[FUZZ_ENTRIES_MAX];
    struct codec_arena enc;
    struct codec_arena dec;
    struct codec_splitter s;
    struct raft_buf frame;
    uint32_t partition;
    uint8_t flags;
    size_t step;
    size_t off = 0;
    int decoded = 0;
    int rv;

    memset(&m, 0, sizeof(m));
    memset(entries, 0, sizeof(entries));
    partition = (uint32_t)r64(&r);
    m.type = r8(&r) % (RAFT_MSG_TYPE_MAX + 2);
    m.from = r64(&r);
    m.to = r64(&r);
    m.term = r64(&r);
    m.index = r64(&r);
    m.log_term = r64(&r);
    m.commit = r64(&r);
    m.hint_index = r64(&r);
    m.hint_term = r64(&r);
    flags = r8(&r);
    m.reject = (flags & 1) != 0;
    m.transfer = (flags & 2) != 0;
    m.done = (flags & 4) != 0;
    m.offset = r64(&r);
    m.total = r64(&r);
    if ((flags & 8) != 0) {
        m.entry_count = r8(&r) % (FUZZ_ENTRIES_MAX + 1);
        m.entries = (flags & 16) != 0 ? NULL : entries;
        for (size_t i = 0; i < m.entry_count; i++) {
            size_t len = r8(&r) % 64;
            entries[i].term = r64(&r);
            entries[i].index = r64(&r);
            entries[i].type = r8(&r) % 5;
            len = len < r.n ? len : r.n;
            entries[i].buf.base = len > 0 ? r.p : NULL;
            entries[i].buf.len = len;
            r.p += len;
            r.n -= len;
        }
    }
    if ((flags & 32) != 0) {
        size_t len = r8(&r);
        len = len < r.n ? len : r.n;
        m.data.base = len > 0 ? r.p : NULL;
        m.data.len = len;
        r.p += len;
        r.n -= len;
    }
    if ((flags & 64) != 0) {
        struct raft_config *c = &m.snapshot.config;
        m.snapshot.index = r64(&r);
        m.snapshot.term = r64(&r);
        m.snapshot.config_index = r64(&r);
        m.snapshot.config_term = r64(&r);
        c->count = r8(&r) % (RAFT_MEMBERS_MAX + 2);
        for (uint32_t i = 0; i < c->count && i < RAFT_MEMBERS_MAX; i++) {
            c->members[i].id = r64(&r);
            c->members[i].role = r8(&r) % 4;
            c->members[i].priority = r8(&r);
        }
        c->old_count = r8(&r) % (RAFT_MEMBERS_MAX + 2);
        for (uint32_t i = 0; i < c->old_count && i < RAFT_MEMBERS_MAX; i++) {
            c->old_voters[i] = r64(&r);
        }
    }
    step = 1 + r8(&r) % 64;

    codec_arena_init(&enc, CODEC_ARENA_BYTES_FOR(CODEC_FRAME_BYTES_DEFAULT));
    rv = codec_raft_encode(&enc, partition, &m, CODEC_FRAME_BYTES_DEFAULT,
                           &frame);
    if (codec_raft_check(&m, NULL) != 0) {
        fuzz_check(rv == CODEC_E_INVALID);
        fuzz_check(frame.len == 0);
        codec_arena_close(&enc);
        return;
    }
    fuzz_check(rv == 0);
    codec_arena_init(&dec, CODEC_ARENA_BYTES_FOR(CODEC_FRAME_BYTES_DEFAULT));
    codec_splitter_init(&s, CODEC_FRAME_BYTES_DEFAULT);
    while (off < frame.len) {
        struct raft_buf out_frame;
        struct codec_frame out;
        size_t chunk = frame.len - off < step ? frame.len - off : step;
        size_t used;
        rv = codec_splitter_feed(&s, (const uint8_t *)frame.base + off, chunk,
                                 &used, &out_frame);
        fuzz_check(rv == 0 || rv == 1);
        fuzz_check(used == chunk);
        off += used;
        if (rv == 1) {
            fuzz_check(off == frame.len);
            fuzz_check(codec_frame_decode(&dec, out_frame.base, out_frame.len,
                                          &out, NULL) == 0);
            fuzz_check(out.body == CODEC_BODY_RAFT);
            fuzz_check(out.partition == partition);
            fuzz_check(message_equal(&m, &out.raft));
            decoded++;
        }
    }
    fuzz_check(decoded == 1);
    codec_splitter_close(&s);
    codec_arena_close(&dec);
    codec_arena_close(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    if ((data[0] & 0x80) != 0) {
        fuzz_build(data + 1, size - 1);
    } else {
        fuzz_stream(data[0], data + 1, size - 1);
    }
    return 0;
}
