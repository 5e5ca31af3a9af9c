/* test_codec.c: unit tests of broker/codec.c, the broker-to-broker framing.
 *
 * Round trips: every raft message type with every field it can carry set
 * (entries with empty, small and 1 MiB payloads; snapshot chunks with
 * plain and joint configurations) is encoded, cut out of a byte stream by
 * the splitter and decoded back to an identical struct raft_message.
 * Hostile input: frames crafted with protobuf-c directly (bad enums,
 * misplaced fields, oversized counts, no body, bad Hello), bad prefixes,
 * oversized lengths, truncated frames, arena limits and random garbage
 * must produce an error code and a message, never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/codec.h"
#include "proto/proto.h"

#define ARENA_BYTES CODEC_ARENA_BYTES_FOR(CODEC_FRAME_BYTES_DEFAULT)
#define BIG_PAYLOAD_BYTES ((size_t)1 << 20)

/* ------------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------- */

/* Storage for one test message and its payloads. */
struct sample {
    struct raft_message m;
    struct raft_entry entries[6];
    uint8_t config_bytes[RAFT_CONFIG_ENCODED_MAX];
    uint8_t *big; /* BIG_PAYLOAD_BYTES, freed by sample_close() */
};

static void sample_close(struct sample *s)
{
    free(s->big);
    s->big = NULL;
}

static void config_joint(struct raft_config *c)
{
    raft_config_init(c);
    assert_int_equal(raft_config_add(c, 1, RAFT_VOTER, 255), 0);
    assert_int_equal(raft_config_add(c, 2, RAFT_VOTER, 0), 0);
    assert_int_equal(raft_config_add(c, UINT64_MAX, RAFT_LEARNER, 7), 0);
    c->old_voters[0] = 1;
    c->old_voters[1] = 3;
    c->old_voters[2] = 4;
    c->old_count = 3;
}

/* Fills s->m with a message of the given type with every field that type
 * may carry set to a distinct non-zero value. */
static void sample_init(struct sample *s, uint8_t type)
{
    struct raft_config c;
    int n;

    memset(s, 0, sizeof(*s));
    s->m.type = type;
    s->m.from = 1;
    s->m.to = UINT64_MAX;
    s->m.term = 0x0102030405060708ull;
    s->m.index = 1000;
    s->m.log_term = 99;
    s->m.commit = 998;
    s->m.hint_index = 500;
    s->m.hint_term = 42;
    s->m.reject = true;
    s->m.transfer = true;
    s->m.done = true;
    s->m.offset = 1u << 20;
    s->m.total = 5u << 20;
    if (type == RAFT_MSG_APPEND) {
        config_joint(&c);
        n = raft_config_encode(&c, s->config_bytes, sizeof(s->config_bytes));
        assert_true(n > 0);
        s->big = malloc(BIG_PAYLOAD_BYTES);
        assert_non_null(s->big);
        for (size_t i = 0; i < BIG_PAYLOAD_BYTES; i++) {
            s->big[i] = (uint8_t)(i * 131 + 7);
        }
        s->entries[0] = (struct raft_entry){.term = 99,
                                            .index = 1001,
                                            .type = RAFT_ENTRY_NORMAL,
                                            .buf = {"hello", 5}};
        s->entries[1] = (struct raft_entry){.term = 99,
                                            .index = 1002,
                                            .type = RAFT_ENTRY_NORMAL,
                                            .buf = {NULL, 0}};
        s->entries[2] =
            (struct raft_entry){.term = 100,
                                .index = 1003,
                                .type = RAFT_ENTRY_CONFIG,
                                .buf = {s->config_bytes, (size_t)n}};
        s->entries[3] = (struct raft_entry){.term = 100,
                                            .index = 1004,
                                            .type = RAFT_ENTRY_NOOP,
                                            .buf = {NULL, 0}};
        s->entries[4] = (struct raft_entry){.term = 100,
                                            .index = 1005,
                                            .type = RAFT_ENTRY_NORMAL,
                                            .buf = {s->big, BIG_PAYLOAD_BYTES}};
        s->entries[5] = (struct raft_entry){.term = UINT64_MAX,
                                            .index = UINT64_MAX,
                                            .type = RAFT_ENTRY_NORMAL,
                                            .buf = {"\0\xff", 2}};
        s->m.entries = s->entries;
        s->m.entry_count = 6;
    }
    if (type == RAFT_MSG_SNAPSHOT) {
        s->m.snapshot.index = 1000;
        s->m.snapshot.term = 99;
        config_joint(&s->m.snapshot.config);
        s->m.snapshot.config_index = 900;
        s->m.snapshot.config_term = 98;
        s->m.data.base = "chunk of snapshot bytes";
        s->m.data.len = 23;
    }
}

static void assert_buf_equal(struct raft_buf a, struct raft_buf b)
{
    assert_int_equal(a.len, b.len);
    if (a.len > 0) {
        assert_non_null(a.base);
        assert_non_null(b.base);
        assert_memory_equal(a.base, b.base, a.len);
    }
}

static void assert_config_equal(const struct raft_config *a,
                                const struct raft_config *b)
{
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->old_count, b->old_count);
    for (uint32_t i = 0; i < a->count; i++) {
        assert_int_equal(a->members[i].id, b->members[i].id);
        assert_int_equal(a->members[i].role, b->members[i].role);
        assert_int_equal(a->members[i].priority, b->members[i].priority);
    }
    for (uint32_t i = 0; i < a->old_count; i++) {
        assert_int_equal(a->old_voters[i], b->old_voters[i]);
    }
}

static void assert_message_equal(const struct raft_message *a,
                                 const struct raft_message *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->from, b->from);
    assert_int_equal(a->to, b->to);
    assert_int_equal(a->term, b->term);
    assert_int_equal(a->index, b->index);
    assert_int_equal(a->log_term, b->log_term);
    assert_int_equal(a->commit, b->commit);
    assert_int_equal(a->hint_index, b->hint_index);
    assert_int_equal(a->hint_term, b->hint_term);
    assert_int_equal(a->reject, b->reject);
    assert_int_equal(a->transfer, b->transfer);
    assert_int_equal(a->done, b->done);
    assert_int_equal(a->entry_count, b->entry_count);
    for (size_t i = 0; i < a->entry_count; i++) {
        assert_int_equal(a->entries[i].term, b->entries[i].term);
        assert_int_equal(a->entries[i].index, b->entries[i].index);
        assert_int_equal(a->entries[i].type, b->entries[i].type);
        assert_buf_equal(a->entries[i].buf, b->entries[i].buf);
    }
    assert_int_equal(a->snapshot.index, b->snapshot.index);
    assert_int_equal(a->snapshot.term, b->snapshot.term);
    assert_int_equal(a->snapshot.config_index, b->snapshot.config_index);
    assert_int_equal(a->snapshot.config_term, b->snapshot.config_term);
    assert_config_equal(&a->snapshot.config, &b->snapshot.config);
    assert_int_equal(a->offset, b->offset);
    assert_int_equal(a->total, b->total);
    assert_buf_equal(a->data, b->data);
}

/* Packs a hand-built Frame behind a length prefix into a malloc()ed
 * buffer, bypassing the encoder's checks. */
static uint8_t *craft(const Tandem__Raft__Frame *f, size_t *len)
{
    size_t body = tandem__raft__frame__get_packed_size(f);
    uint8_t *buf = malloc(CODEC_PREFIX_BYTES + body);
    assert_non_null(buf);
    buf[0] = (uint8_t)(body >> 24);
    buf[1] = (uint8_t)(body >> 16);
    buf[2] = (uint8_t)(body >> 8);
    buf[3] = (uint8_t)body;
    assert_int_equal(tandem__raft__frame__pack(f, buf + CODEC_PREFIX_BYTES),
                     body);
    *len = CODEC_PREFIX_BYTES + body;
    return buf;
}

/* Decodes a crafted frame and expects failure with rv and a message. */
static void expect_decode_fails(const Tandem__Raft__Frame *f, int rv)
{
    struct codec_arena arena;
    struct codec_frame out;
    char errmsg[CODEC_ERRMSG_SIZE] = "";
    size_t len;
    uint8_t *buf = craft(f, &len);

    codec_arena_init(&arena, ARENA_BYTES);
    assert_int_equal(codec_frame_decode(&arena, buf, len, &out, errmsg), rv);
    assert_true(strlen(errmsg) > 0);
    assert_int_equal(out.body, 0);
    assert_int_equal(out.raft.entry_count, 0);
    codec_arena_close(&arena);
    free(buf);
}

/* A minimal valid RaftMessage for crafting. */
static Tandem__Raft__RaftMessage crafted_message(int type)
{
    Tandem__Raft__RaftMessage rm = TANDEM__RAFT__RAFT_MESSAGE__INIT;
    rm.type = (Tandem__Raft__MessageType)type;
    rm.from = 1;
    rm.to = 2;
    rm.term = 3;
    return rm;
}

static Tandem__Raft__Frame crafted_frame(Tandem__Raft__RaftMessage *rm)
{
    Tandem__Raft__Frame f = TANDEM__RAFT__FRAME__INIT;
    f.partition = 7;
    f.body_case = TANDEM__RAFT__FRAME__BODY_RAFT;
    f.raft = rm;
    return f;
}

/* Feeds data to a splitter in chunks of `step` bytes, decodes every frame
 * and appends the decoded partition ids to parts. Returns the number of
 * frames, or the first negative error. */
static int split_all(struct codec_splitter *s, struct codec_arena *arena,
                     const uint8_t *data, size_t len, size_t step,
                     struct raft_message *last, uint32_t *parts,
                     size_t parts_max)
{
    size_t off = 0;
    int frames = 0;

    while (off < len) {
        size_t chunk = len - off < step ? len - off : step;
        const uint8_t *p = data + off;
        off += chunk;
        while (chunk > 0) {
            struct raft_buf frame;
            struct codec_frame out;
            size_t used;
            int rv = codec_splitter_feed(s, p, chunk, &used, &frame);
            if (rv < 0) {
                return rv;
            }
            assert_true(used <= chunk);
            p += used;
            chunk -= used;
            if (rv == 0) {
                assert_int_equal(chunk, 0);
                break;
            }
            assert_int_equal(rv, 1);
            assert_int_equal(
                codec_frame_decode(arena, frame.base, frame.len, &out, NULL),
                0);
            assert_int_equal(out.body, CODEC_BODY_RAFT);
            if ((size_t)frames < parts_max) {
                parts[frames] = out.partition;
            }
            if (last != NULL) {
                *last = out.raft;
            }
            frames++;
        }
    }
    return frames;
}

/* ------------------------------------------------------------------------
 * Round trips
 * --------------------------------------------------------------------- */

static void roundtrip_every_type(void **state)
{
    (void)state;
    for (uint8_t type = 1; type <= RAFT_MSG_TYPE_MAX; type++) {
        struct sample s;
        struct codec_arena enc;
        struct codec_arena dec;
        struct raft_buf frame;
        struct codec_frame out;
        char errmsg[CODEC_ERRMSG_SIZE] = "";

        sample_init(&s, type);
        codec_arena_init(&enc, ARENA_BYTES);
        codec_arena_init(&dec, ARENA_BYTES);
        assert_int_equal(codec_raft_check(&s.m, NULL), 0);
        assert_int_equal(codec_raft_encode(&enc, 0xfffffffeu, &s.m,
                                           CODEC_FRAME_BYTES_DEFAULT, &frame),
                         0);
        assert_true(frame.len > CODEC_PREFIX_BYTES);
        assert_int_equal(
            codec_frame_decode(&dec, frame.base, frame.len, &out, errmsg), 0);
        assert_int_equal(out.partition, 0xfffffffeu);
        assert_int_equal(out.body, CODEC_BODY_RAFT);
        assert_message_equal(&s.m, &out.raft);
        /* Decoded payloads live in the decoder's arena, not the frame. */
        if (out.raft.entry_count > 0) {
            const uint8_t *b = out.raft.entries[4].buf.base;
            const uint8_t *f = frame.base;
            assert_true(b + BIG_PAYLOAD_BYTES <= f || b >= f + frame.len);
        }
        /* Decoding does not consume or alter the frame. */
        codec_arena_reset(&dec);
        assert_int_equal(
            codec_frame_decode(&dec, frame.base, frame.len, &out, NULL), 0);
        assert_message_equal(&s.m, &out.raft);
        codec_arena_close(&enc);
        codec_arena_close(&dec);
        sample_close(&s);
    }
}

static void roundtrip_minimal_heartbeat(void **state)
{
    struct raft_message m;
    struct codec_arena arena;
    struct raft_buf frame;
    struct codec_frame out;

    (void)state;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND;
    m.from = 2;
    m.to = 3;
    m.term = 5;
    m.commit = 17;
    codec_arena_init(&arena, 1u << 16);
    assert_int_equal(codec_raft_encode(&arena, 1, &m, 64, &frame), 0);
    /* Zero fields are not on the wire: a heartbeat is tiny. */
    assert_true(frame.len <= 24);
    assert_int_equal(
        codec_frame_decode(&arena, frame.base, frame.len, &out, NULL), 0);
    assert_int_equal(out.partition, 1);
    assert_message_equal(&m, &out.raft);
    assert_null(out.raft.entries);
    assert_null(out.raft.data.base);
    codec_arena_close(&arena);
}

static void roundtrip_snapshot_plain_config_and_empty_chunk(void **state)
{
    struct raft_message m;
    struct codec_arena arena;
    struct raft_buf frame;
    struct codec_frame out;

    (void)state;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_SNAPSHOT;
    m.from = 1;
    m.to = 2;
    m.term = 4;
    m.index = 10;
    m.log_term = 4;
    m.snapshot.index = 10;
    m.snapshot.term = 4;
    raft_config_init(&m.snapshot.config);
    for (raft_id id = 1; id <= RAFT_MEMBERS_MAX; id++) {
        assert_int_equal(raft_config_add(&m.snapshot.config, id,
                                         id % 2 ? RAFT_VOTER : RAFT_LEARNER,
                                         (uint8_t)id),
                         0);
    }
    m.offset = 100;
    m.total = 100;
    m.done = true; /* empty last chunk */
    codec_arena_init(&arena, ARENA_BYTES);
    assert_int_equal(
        codec_raft_encode(&arena, 3, &m, CODEC_FRAME_BYTES_DEFAULT, &frame), 0);
    assert_int_equal(
        codec_frame_decode(&arena, frame.base, frame.len, &out, NULL), 0);
    assert_message_equal(&m, &out.raft);
    assert_int_equal(raft_config_validate(&out.raft.snapshot.config), 0);
    codec_arena_close(&arena);
}

/* The largest legitimate frames fit the arena size codec.h recommends:
 * CODEC_ENTRIES_MAX empty entries, and a snapshot chunk close to the frame
 * limit. */
static void roundtrip_limits_fit_recommended_arena(void **state)
{
    struct raft_message m;
    struct raft_entry *es;
    struct codec_arena enc;
    struct codec_arena dec;
    struct raft_buf frame;
    struct codec_frame out;
    uint8_t *chunk;
    size_t chunk_len = CODEC_FRAME_BYTES_DEFAULT - 256;

    (void)state;
    es = calloc(CODEC_ENTRIES_MAX, sizeof(*es));
    assert_non_null(es);
    for (size_t i = 0; i < CODEC_ENTRIES_MAX; i++) {
        es[i].term = 1u << 30;
        es[i].index = (1ull << 40) + i;
        es[i].type = RAFT_ENTRY_NOOP;
    }
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND;
    m.from = 1;
    m.to = 2;
    m.entries = es;
    m.entry_count = CODEC_ENTRIES_MAX;
    codec_arena_init(&enc, ARENA_BYTES);
    codec_arena_init(&dec, ARENA_BYTES);
    assert_int_equal(
        codec_raft_encode(&enc, 1, &m, CODEC_FRAME_BYTES_DEFAULT, &frame), 0);
    assert_int_equal(
        codec_frame_decode(&dec, frame.base, frame.len, &out, NULL), 0);
    assert_message_equal(&m, &out.raft);
    /* One entry more is refused on both sides. */
    m.entry_count = CODEC_ENTRIES_MAX + 1;
    assert_int_equal(codec_raft_check(&m, NULL), CODEC_E_INVALID);
    free(es);
    codec_arena_reset(&enc);
    codec_arena_reset(&dec);

    chunk = malloc(chunk_len);
    assert_non_null(chunk);
    memset(chunk, 0xab, chunk_len);
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_SNAPSHOT;
    m.from = 1;
    m.to = 2;
    m.snapshot.index = 5;
    m.snapshot.term = 1;
    config_joint(&m.snapshot.config);
    m.data.base = chunk;
    m.data.len = chunk_len;
    m.total = chunk_len;
    assert_int_equal(
        codec_raft_encode(&enc, 1, &m, CODEC_FRAME_BYTES_DEFAULT, &frame), 0);
    assert_int_equal(
        codec_frame_decode(&dec, frame.base, frame.len, &out, NULL), 0);
    assert_message_equal(&m, &out.raft);
    free(chunk);
    codec_arena_close(&enc);
    codec_arena_close(&dec);
}

/* PartitionCommand frames (deployment distribution): a request with its
 * record and an ack survive the round trip; malformed ones are refused on
 * both sides. */
static void roundtrip_partition_command(void **state)
{
    struct codec_arena enc;
    struct codec_arena dec;
    struct codec_command c;
    struct codec_frame out;
    struct raft_buf frame;
    const char record[] = "\x08\x01\x18\x01"; /* any bytes */
    (void)state;

    codec_arena_init(&enc, ARENA_BYTES);
    codec_arena_init(&dec, ARENA_BYTES);
    memset(&c, 0, sizeof(c));
    c.source_partition = 1;
    c.target_partition = 3;
    c.distribution_key = (1ull << 51) + 7;
    c.record = record;
    c.record_len = 4;
    assert_int_equal(codec_command_encode(&enc, 3, &c,
                                          CODEC_FRAME_BYTES_DEFAULT, &frame),
                     0);
    assert_int_equal(
        codec_frame_decode(&dec, frame.base, frame.len, &out, NULL), 0);
    assert_int_equal(out.body, CODEC_BODY_COMMAND);
    assert_int_equal(out.partition, 3);
    assert_int_equal(out.command.source_partition, 1);
    assert_int_equal(out.command.target_partition, 3);
    assert_int_equal(out.command.distribution_key, c.distribution_key);
    assert_int_equal(out.command.record_len, 4);
    assert_memory_equal(out.command.record, record, 4);
    assert_false(out.command.ack);
    /* An ack carries no record. */
    c.record = NULL;
    c.record_len = 0;
    c.ack = true;
    assert_int_equal(codec_command_encode(&enc, 1, &c,
                                          CODEC_FRAME_BYTES_DEFAULT, &frame),
                     0);
    assert_int_equal(
        codec_frame_decode(&dec, frame.base, frame.len, &out, NULL), 0);
    assert_true(out.command.ack);
    assert_null(out.command.record);
    /* Neither record nor ack, or no partitions: refused. */
    c.ack = false;
    assert_int_equal(codec_command_encode(&enc, 1, &c,
                                          CODEC_FRAME_BYTES_DEFAULT, &frame),
                     CODEC_E_INVALID);
    c.ack = true;
    c.source_partition = 0;
    assert_int_equal(codec_command_encode(&enc, 1, &c,
                                          CODEC_FRAME_BYTES_DEFAULT, &frame),
                     CODEC_E_INVALID);
    {
        /* Hand-made frame: PartitionCommand without a record or ack. */
        Tandem__Raft__Frame f = TANDEM__RAFT__FRAME__INIT;
        Tandem__Raft__PartitionCommand pc =
            TANDEM__RAFT__PARTITION_COMMAND__INIT;
        uint8_t buf[64];
        size_t n;
        pc.source_partition = 1;
        pc.target_partition = 2;
        f.partition = 2;
        f.body_case = TANDEM__RAFT__FRAME__BODY_COMMAND;
        f.command = &pc;
        n = tandem__raft__frame__pack(&f, buf + 4);
        buf[0] = (uint8_t)(n >> 24);
        buf[1] = (uint8_t)(n >> 16);
        buf[2] = (uint8_t)(n >> 8);
        buf[3] = (uint8_t)n;
        assert_int_equal(codec_frame_decode(&dec, buf, n + 4, &out, NULL),
                         CODEC_E_MALFORMED);
    }
    codec_arena_close(&enc);
    codec_arena_close(&dec);
}

static void roundtrip_hello(void **state)
{
    struct codec_hello h = {PROTO_RAFT_VERSION, 42, "tandem-test"};
    struct codec_hello bad;
    struct codec_arena arena;
    struct raft_buf frame;
    struct codec_frame out;
    char name[CODEC_CLUSTER_NAME_MAX + 2];

    (void)state;
    codec_arena_init(&arena, 1u << 16);
    assert_int_equal(codec_hello_encode(&arena, &h, &frame), 0);
    assert_int_equal(
        codec_frame_decode(&arena, frame.base, frame.len, &out, NULL), 0);
    assert_int_equal(out.body, CODEC_BODY_HELLO);
    assert_int_equal(out.partition, 0);
    assert_int_equal(out.hello.protocol_version, PROTO_RAFT_VERSION);
    assert_int_equal(out.hello.node_id, 42);
    assert_string_equal(out.hello.cluster_name, "tandem-test");
    assert_int_equal(out.raft.type, 0);

    /* Empty and maximal names are fine; longer ones are not. */
    memset(name, 'n', sizeof(name));
    name[CODEC_CLUSTER_NAME_MAX] = '\0';
    bad = h;
    bad.cluster_name = name;
    assert_int_equal(codec_hello_encode(&arena, &bad, &frame), 0);
    assert_int_equal(
        codec_frame_decode(&arena, frame.base, frame.len, &out, NULL), 0);
    assert_string_equal(out.hello.cluster_name, name);
    bad.cluster_name = "";
    assert_int_equal(codec_hello_encode(&arena, &bad, &frame), 0);
    name[CODEC_CLUSTER_NAME_MAX] = 'n';
    name[CODEC_CLUSTER_NAME_MAX + 1] = '\0';
    bad.cluster_name = name;
    assert_int_equal(codec_hello_encode(&arena, &bad, &frame), CODEC_E_INVALID);
    assert_int_equal(frame.len, 0);
    bad = h;
    bad.protocol_version = 0;
    assert_int_equal(codec_hello_encode(&arena, &bad, &frame), CODEC_E_INVALID);
    bad = h;
    bad.node_id = 0;
    assert_int_equal(codec_hello_encode(&arena, &bad, &frame), CODEC_E_INVALID);
    bad = h;
    bad.cluster_name = NULL;
    assert_int_equal(codec_hello_encode(&arena, &bad, &frame), CODEC_E_INVALID);
    codec_arena_close(&arena);
}

/* ------------------------------------------------------------------------
 * Encoder refusals
 * --------------------------------------------------------------------- */

static void expect_encode_invalid(const struct raft_message *m)
{
    struct codec_arena arena;
    struct raft_buf frame;
    char errmsg[CODEC_ERRMSG_SIZE] = "";

    assert_int_equal(codec_raft_check(m, errmsg), CODEC_E_INVALID);
    assert_true(strlen(errmsg) > 0);
    codec_arena_init(&arena, ARENA_BYTES);
    assert_int_equal(
        codec_raft_encode(&arena, 1, m, CODEC_FRAME_BYTES_DEFAULT, &frame),
        CODEC_E_INVALID);
    assert_null(frame.base);
    assert_int_equal(frame.len, 0);
    codec_arena_close(&arena);
}

static void encode_rejects_invalid_messages(void **state)
{
    struct sample s;
    struct raft_entry e = {1, 1, RAFT_ENTRY_NORMAL, {"x", 1}};

    (void)state;
    sample_init(&s, RAFT_MSG_VOTE);
    s.m.type = 0;
    expect_encode_invalid(&s.m);
    s.m.type = RAFT_MSG_TYPE_MAX + 1;
    expect_encode_invalid(&s.m);
    s.m.type = RAFT_MSG_VOTE;
    s.m.from = 0;
    expect_encode_invalid(&s.m);
    s.m.from = 1;
    s.m.to = 0;
    expect_encode_invalid(&s.m);
    s.m.to = 2;
    s.m.entries = &e; /* entries outside APPEND */
    s.m.entry_count = 1;
    expect_encode_invalid(&s.m);
    s.m.entries = NULL;
    s.m.entry_count = 0;
    s.m.data.base = "d"; /* data outside SNAPSHOT */
    s.m.data.len = 1;
    expect_encode_invalid(&s.m);
    s.m.data.base = NULL;
    s.m.data.len = 0;
    s.m.snapshot.index = 3; /* snapshot metadata outside SNAPSHOT */
    expect_encode_invalid(&s.m);
    s.m.snapshot.index = 0;
    assert_int_equal(codec_raft_check(&s.m, NULL), 0);

    sample_init(&s, RAFT_MSG_APPEND);
    s.m.entries = NULL; /* counted but missing */
    expect_encode_invalid(&s.m);
    s.m.entries = s.entries;
    s.entries[3].type = 0;
    expect_encode_invalid(&s.m);
    s.entries[3].type = RAFT_ENTRY_NOOP + 1;
    expect_encode_invalid(&s.m);
    s.entries[3].type = RAFT_ENTRY_NOOP;
    s.entries[0].buf.base = NULL; /* length without bytes */
    expect_encode_invalid(&s.m);
    sample_close(&s);

    sample_init(&s, RAFT_MSG_SNAPSHOT);
    s.m.snapshot.config.count = RAFT_MEMBERS_MAX + 1;
    expect_encode_invalid(&s.m);
    s.m.snapshot.config.count = 3;
    s.m.snapshot.config.old_count = RAFT_MEMBERS_MAX + 1;
    expect_encode_invalid(&s.m);
    s.m.snapshot.config.old_count = 0;
    s.m.snapshot.config.members[1].role = 3;
    expect_encode_invalid(&s.m);
    s.m.snapshot.config.members[1].role = RAFT_VOTER;
    s.m.data.base = NULL;
    expect_encode_invalid(&s.m);
}

static void encode_refuses_oversized_frames(void **state)
{
    struct sample s;
    struct codec_arena arena;
    struct raft_buf frame;

    (void)state;
    sample_init(&s, RAFT_MSG_APPEND); /* > 1 MiB of payload */
    codec_arena_init(&arena, ARENA_BYTES);
    assert_int_equal(
        codec_raft_encode(&arena, 1, &s.m, BIG_PAYLOAD_BYTES, &frame),
        CODEC_E_TOO_BIG);
    assert_null(frame.base);
    /* An arena too small for the frame reports NOMEM. */
    codec_arena_close(&arena);
    codec_arena_init(&arena, 4096);
    assert_int_equal(
        codec_raft_encode(&arena, 1, &s.m, CODEC_FRAME_BYTES_DEFAULT, &frame),
        CODEC_E_NOMEM);
    assert_true(arena.full);
    codec_arena_close(&arena);
    sample_close(&s);
}

/* ------------------------------------------------------------------------
 * Decoder refusals
 * --------------------------------------------------------------------- */

static void decode_rejects_bad_prefix_and_garbage(void **state)
{
    struct codec_arena arena;
    struct codec_frame out;
    char errmsg[CODEC_ERRMSG_SIZE];
    const uint8_t short_frame[] = {0, 0, 0};
    const uint8_t wrong_len[] = {0, 0, 0, 5, 0x08, 0x01};
    const uint8_t garbage[] = {0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const uint8_t truncated_field[] = {0, 0, 0, 2, 0x12, 0x10};
    const uint8_t empty[] = {0, 0, 0, 0};
    const uint8_t partition_only[] = {0, 0, 0, 2, 0x08, 0x05};

    (void)state;
    codec_arena_init(&arena, 1u << 16);
    errmsg[0] = '\0';
    assert_int_equal(codec_frame_decode(&arena, short_frame,
                                        sizeof(short_frame), &out, errmsg),
                     CODEC_E_MALFORMED);
    assert_true(strlen(errmsg) > 0);
    assert_int_equal(
        codec_frame_decode(&arena, wrong_len, sizeof(wrong_len), &out, errmsg),
        CODEC_E_MALFORMED);
    assert_non_null(strstr(errmsg, "length prefix"));
    assert_int_equal(
        codec_frame_decode(&arena, garbage, sizeof(garbage), &out, errmsg),
        CODEC_E_MALFORMED);
    assert_int_equal(codec_frame_decode(&arena, truncated_field,
                                        sizeof(truncated_field), &out, errmsg),
                     CODEC_E_MALFORMED);
    assert_int_equal(
        codec_frame_decode(&arena, empty, sizeof(empty), &out, errmsg),
        CODEC_E_MALFORMED);
    assert_non_null(strstr(errmsg, "no body"));
    assert_int_equal(codec_frame_decode(&arena, partition_only,
                                        sizeof(partition_only), &out, errmsg),
                     CODEC_E_MALFORMED);
    assert_int_equal(codec_frame_decode(&arena, NULL, 0, &out, NULL),
                     CODEC_E_MALFORMED);
    codec_arena_close(&arena);
}

static void decode_rejects_bad_raft_messages(void **state)
{
    Tandem__Raft__RaftMessage rm;
    Tandem__Raft__Frame f;
    Tandem__Raft__Entry e = TANDEM__RAFT__ENTRY__INIT;
    Tandem__Raft__Entry *ep = &e;
    Tandem__Raft__SnapshotMeta sm = TANDEM__RAFT__SNAPSHOT_META__INIT;
    Tandem__Raft__Config cfg = TANDEM__RAFT__CONFIG__INIT;
    Tandem__Raft__Member mb[RAFT_MEMBERS_MAX + 1];
    Tandem__Raft__Member *mbp[RAFT_MEMBERS_MAX + 1];
    uint64_t olds[RAFT_MEMBERS_MAX + 1] = {0};

    (void)state;
    for (int t = -1; t <= 100; t += 101) { /* unknown types */
        rm = crafted_message(t);
        f = crafted_frame(&rm);
        expect_decode_fails(&f, CODEC_E_MALFORMED);
    }
    rm = crafted_message(0); /* type absent */
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    rm = crafted_message(RAFT_MSG_VOTE);
    rm.from = 0;
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);

    /* Entries outside APPEND, and entries with unknown types. */
    e.type = TANDEM__RAFT__ENTRY_TYPE__ENTRY_TYPE_NORMAL;
    rm = crafted_message(RAFT_MSG_VOTE_RESP);
    rm.n_entries = 1;
    rm.entries = &ep;
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    rm.type = TANDEM__RAFT__MESSAGE_TYPE__MESSAGE_TYPE_APPEND;
    e.type = (Tandem__Raft__EntryType)0;
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    e.type = (Tandem__Raft__EntryType)4;
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);

    /* Snapshot fields outside SNAPSHOT; SNAPSHOT without them. */
    rm = crafted_message(RAFT_MSG_APPEND);
    rm.snapshot = &sm;
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    rm = crafted_message(RAFT_MSG_APPEND_RESP);
    rm.data.len = 1;
    rm.data.data = (uint8_t *)"x";
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    rm = crafted_message(RAFT_MSG_SNAPSHOT);
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    rm.snapshot = &sm; /* metadata without a configuration */
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);

    /* Configurations: too many members or old voters, bad roles and
     * priorities. */
    for (int i = 0; i <= RAFT_MEMBERS_MAX; i++) {
        tandem__raft__member__init(&mb[i]);
        mb[i].id = (uint64_t)i + 1;
        mb[i].role = TANDEM__RAFT__MEMBER_ROLE__MEMBER_ROLE_VOTER;
        mbp[i] = &mb[i];
    }
    sm.config = &cfg;
    cfg.members = mbp;
    cfg.n_members = RAFT_MEMBERS_MAX + 1;
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    cfg.n_members = 3;
    cfg.old_voters = olds;
    cfg.n_old_voters = RAFT_MEMBERS_MAX + 1;
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    cfg.n_old_voters = 0;
    mb[1].role = (Tandem__Raft__MemberRole)3;
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    mb[1].role = TANDEM__RAFT__MEMBER_ROLE__MEMBER_ROLE_UNSPECIFIED;
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    mb[1].role = TANDEM__RAFT__MEMBER_ROLE__MEMBER_ROLE_LEARNER;
    mb[2].priority = RAFT_PRIORITY_MAX + 1;
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    mb[2].priority = RAFT_PRIORITY_MAX;
    {
        /* The repaired message decodes. */
        struct codec_arena arena;
        struct codec_frame out;
        size_t len;
        uint8_t *buf = craft(&f, &len);
        codec_arena_init(&arena, ARENA_BYTES);
        assert_int_equal(codec_frame_decode(&arena, buf, len, &out, NULL), 0);
        assert_int_equal(out.partition, 7);
        assert_int_equal(out.raft.snapshot.config.count, 3);
        assert_int_equal(out.raft.snapshot.config.members[1].role,
                         RAFT_LEARNER);
        assert_int_equal(out.raft.snapshot.config.members[2].priority, 255);
        codec_arena_close(&arena);
        free(buf);
    }
}

static void decode_rejects_too_many_entries(void **state)
{
    Tandem__Raft__RaftMessage rm = crafted_message(RAFT_MSG_APPEND);
    Tandem__Raft__Frame f;
    Tandem__Raft__Entry e = TANDEM__RAFT__ENTRY__INIT;
    Tandem__Raft__Entry **eps;
    size_t n = CODEC_ENTRIES_MAX + 1;

    (void)state;
    e.type = TANDEM__RAFT__ENTRY_TYPE__ENTRY_TYPE_NOOP;
    eps = malloc(n * sizeof(*eps));
    assert_non_null(eps);
    for (size_t i = 0; i < n; i++) {
        eps[i] = &e;
    }
    rm.n_entries = n;
    rm.entries = eps;
    f = crafted_frame(&rm);
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    free(eps);
}

static void decode_rejects_bad_hello(void **state)
{
    Tandem__Raft__Hello h = TANDEM__RAFT__HELLO__INIT;
    Tandem__Raft__Frame f = TANDEM__RAFT__FRAME__INIT;
    char name[CODEC_CLUSTER_NAME_MAX + 2];

    (void)state;
    h.protocol_version = 1;
    h.node_id = 9;
    h.cluster_name = (char *)"c";
    f.body_case = TANDEM__RAFT__FRAME__BODY_HELLO;
    f.hello = &h;
    f.partition = 5; /* Hello belongs to partition 0 */
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    f.partition = 0;
    h.protocol_version = 0;
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    h.protocol_version = 1;
    h.node_id = 0;
    expect_decode_fails(&f, CODEC_E_MALFORMED);
    h.node_id = 9;
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    h.cluster_name = name;
    expect_decode_fails(&f, CODEC_E_MALFORMED);
}

/* A frame that unpacks into far more memory than its size (many tiny
 * entries) hits the arena limit and is refused, not allocated. */
static void decode_respects_arena_limit(void **state)
{
    Tandem__Raft__RaftMessage rm = crafted_message(RAFT_MSG_APPEND);
    Tandem__Raft__Frame f;
    Tandem__Raft__Entry e = TANDEM__RAFT__ENTRY__INIT;
    Tandem__Raft__Entry *eps[2000];
    struct codec_arena arena;
    struct codec_frame out;
    char errmsg[CODEC_ERRMSG_SIZE] = "";
    size_t len;
    uint8_t *buf;

    (void)state;
    e.type = TANDEM__RAFT__ENTRY_TYPE__ENTRY_TYPE_NOOP;
    for (size_t i = 0; i < 2000; i++) {
        eps[i] = &e;
    }
    rm.n_entries = 2000;
    rm.entries = eps;
    f = crafted_frame(&rm);
    buf = craft(&f, &len);
    assert_true(len < 8192);
    codec_arena_init(&arena, 32768);
    assert_int_equal(codec_frame_decode(&arena, buf, len, &out, errmsg),
                     CODEC_E_NOMEM);
    assert_non_null(strstr(errmsg, "arena"));
    assert_true(arena.full);
    assert_true(arena.bytes <= arena.bytes_max);
    codec_arena_reset(&arena);
    assert_false(arena.full);
    codec_arena_close(&arena);
    codec_arena_init(&arena, ARENA_BYTES);
    assert_int_equal(codec_frame_decode(&arena, buf, len, &out, NULL), 0);
    assert_int_equal(out.raft.entry_count, 2000);
    codec_arena_close(&arena);
    free(buf);
}

/* ------------------------------------------------------------------------
 * Splitter
 * --------------------------------------------------------------------- */

/* Concatenates frames of every type, on partitions 1..N, into one stream. */
static uint8_t *stream_build(struct codec_arena *arena, size_t *len, int *count,
                             bool small)
{
    uint8_t *stream = NULL;
    size_t n = 0;
    int frames = 0;

    for (int round = 0; round < 2; round++) {
        for (uint8_t type = 1; type <= RAFT_MSG_TYPE_MAX; type++) {
            struct sample s;
            struct raft_buf frame;
            sample_init(&s, type);
            if (small && type == RAFT_MSG_APPEND) {
                s.m.entry_count = 4; /* leave out the 1 MiB payload */
            }
            assert_int_equal(codec_raft_encode(arena, (uint32_t)frames + 1,
                                               &s.m, CODEC_FRAME_BYTES_DEFAULT,
                                               &frame),
                             0);
            stream = realloc(stream, n + frame.len);
            assert_non_null(stream);
            memcpy(stream + n, frame.base, frame.len);
            n += frame.len;
            frames++;
            sample_close(&s);
        }
    }
    *len = n;
    *count = frames;
    return stream;
}

static void splitter_byte_by_byte_and_chunked(void **state)
{
    const size_t steps[] = {1, 2, 3, 7, 64, 1000, 65536, SIZE_MAX};
    struct codec_arena enc;
    struct codec_arena dec;
    uint8_t *stream;
    size_t len;
    int count;

    (void)state;
    codec_arena_init(&enc, ARENA_BYTES);
    codec_arena_init(&dec, ARENA_BYTES);
    stream = stream_build(&enc, &len, &count, false);
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        struct codec_splitter s;
        uint32_t parts[32];
        struct raft_message last;
        struct sample expect;

        codec_splitter_init(&s, CODEC_FRAME_BYTES_DEFAULT);
        assert_int_equal(
            split_all(&s, &dec, stream, len, steps[k], &last, parts, 32),
            count);
        for (int i = 0; i < count; i++) {
            assert_int_equal(parts[i], (uint32_t)i + 1);
        }
        sample_init(&expect, RAFT_MSG_TIMEOUT_NOW);
        assert_message_equal(&expect.m, &last);
        /* Nothing is left half-read. */
        {
            struct raft_buf frame;
            size_t used;
            assert_int_equal(codec_splitter_feed(&s, NULL, 0, &used, &frame),
                             0);
            assert_int_equal(s.frames.have, 0);
        }
        codec_splitter_close(&s);
        codec_arena_reset(&dec);
    }
    free(stream);
    codec_arena_close(&enc);
    codec_arena_close(&dec);
}

static void splitter_many_frames_in_one_chunk_zero_copy(void **state)
{
    struct codec_arena enc;
    struct codec_splitter s;
    uint8_t *stream;
    size_t len;
    size_t off = 0;
    int count;
    int got = 0;

    (void)state;
    codec_arena_init(&enc, ARENA_BYTES);
    stream = stream_build(&enc, &len, &count, true);
    codec_splitter_init(&s, CODEC_FRAME_BYTES_DEFAULT);
    for (;;) {
        struct raft_buf frame;
        size_t used;
        int rv =
            codec_splitter_feed(&s, stream + off, len - off, &used, &frame);
        if (rv == 0) {
            assert_int_equal(used, 0);
            break;
        }
        assert_int_equal(rv, 1);
        /* Whole frames inside the chunk are returned in place. */
        assert_ptr_equal(frame.base, stream + off);
        assert_int_equal(frame.len, used);
        off += used;
        got++;
    }
    assert_int_equal(got, count);
    assert_int_equal(off, len);
    assert_null(s.frames.buf);
    codec_splitter_close(&s);
    free(stream);
    codec_arena_close(&enc);
}

/* Every split point of a two-frame stream yields both frames. */
static void splitter_frame_split_across_chunks(void **state)
{
    struct codec_arena enc;
    struct codec_arena dec;
    struct sample a;
    struct sample b;
    struct raft_buf fa;
    struct raft_buf fb;
    uint8_t stream[512];
    size_t len;

    (void)state;
    codec_arena_init(&enc, 1u << 16);
    codec_arena_init(&dec, 1u << 16);
    sample_init(&a, RAFT_MSG_SNAPSHOT);
    sample_init(&b, RAFT_MSG_APPEND_RESP);
    assert_int_equal(codec_raft_encode(&enc, 11, &a.m, 4096, &fa), 0);
    assert_int_equal(codec_raft_encode(&enc, 12, &b.m, 4096, &fb), 0);
    assert_true(fa.len + fb.len <= sizeof(stream));
    memcpy(stream, fa.base, fa.len);
    memcpy(stream + fa.len, fb.base, fb.len);
    len = fa.len + fb.len;
    for (size_t cut = 0; cut <= len; cut++) {
        struct codec_splitter s;
        const uint8_t *chunks[2] = {stream, stream + cut};
        size_t sizes[2] = {cut, len - cut};
        int frames = 0;

        codec_splitter_init(&s, 4096);
        for (int c = 0; c < 2; c++) {
            const uint8_t *p = chunks[c];
            size_t n = sizes[c];
            for (;;) {
                struct raft_buf frame;
                struct codec_frame out;
                size_t used;
                int rv = codec_splitter_feed(&s, p, n, &used, &frame);
                assert_true(rv == 0 || rv == 1);
                p += used;
                n -= used;
                if (rv == 0) {
                    break;
                }
                assert_int_equal(
                    codec_frame_decode(&dec, frame.base, frame.len, &out, NULL),
                    0);
                assert_int_equal(out.partition, frames == 0 ? 11 : 12);
                assert_message_equal(frames == 0 ? &a.m : &b.m, &out.raft);
                frames++;
            }
            assert_int_equal(n, 0);
        }
        assert_int_equal(frames, 2);
        codec_splitter_close(&s);
        codec_arena_reset(&dec);
    }
    codec_arena_close(&enc);
    codec_arena_close(&dec);
}

static void splitter_rejects_oversized_length(void **state)
{
    struct codec_splitter s;
    struct raft_buf frame;
    size_t used;
    const uint8_t big[] = {0x00, 0x40, 0x00, 0x01, 1, 2, 3};
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};

    (void)state;
    /* Prefix in one piece (fast path). */
    codec_splitter_init(&s, CODEC_FRAME_BYTES_DEFAULT);
    assert_int_equal(codec_splitter_feed(&s, big, sizeof(big), &used, &frame),
                     CODEC_E_TOO_BIG);
    assert_non_null(strstr(s.errmsg, "exceeds"));
    assert_null(s.frames.buf); /* nothing was buffered */
    /* Sticky: the connection must be closed. */
    assert_int_equal(codec_splitter_feed(&s, big + 4, 3, &used, &frame),
                     CODEC_E_TOO_BIG);
    assert_int_equal(used, 0);
    codec_splitter_close(&s);

    /* Prefix split over single bytes (slow path). */
    codec_splitter_init(&s, 16);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(codec_splitter_feed(&s, huge + i, 1, &used, &frame),
                         0);
        assert_int_equal(used, 1);
    }
    assert_int_equal(codec_splitter_feed(&s, huge + 3, 1, &used, &frame),
                     CODEC_E_TOO_BIG);
    assert_null(s.frames.buf);
    codec_splitter_close(&s);

    /* Exactly at the limit is fine. */
    {
        uint8_t at[4 + 16] = {0, 0, 0, 16};
        codec_splitter_init(&s, 16);
        assert_int_equal(codec_splitter_feed(&s, at, sizeof(at), &used, &frame),
                         1);
        assert_int_equal(frame.len, sizeof(at));
        codec_splitter_close(&s);
    }
}

static void splitter_truncated_frame_waits(void **state)
{
    struct codec_arena enc;
    struct codec_arena dec;
    struct codec_splitter s;
    struct sample smp;
    struct raft_buf frame;
    struct raft_buf out_frame;
    struct codec_frame out;
    size_t used;

    (void)state;
    codec_arena_init(&enc, 1u << 16);
    codec_arena_init(&dec, 1u << 16);
    sample_init(&smp, RAFT_MSG_VOTE);
    assert_int_equal(codec_raft_encode(&enc, 1, &smp.m, 4096, &frame), 0);
    codec_splitter_init(&s, 4096);
    /* All but the last byte: consumed and held, no frame. */
    assert_int_equal(
        codec_splitter_feed(&s, frame.base, frame.len - 1, &used, &out_frame),
        0);
    assert_int_equal(used, frame.len - 1);
    assert_null(out_frame.base);
    assert_true(s.frames.buf_cap <= 4 + 4096); /* bounded by the frame */
    /* An empty feed changes nothing. */
    assert_int_equal(codec_splitter_feed(&s, NULL, 0, &used, &out_frame), 0);
    /* A truncated frame handed to the decoder directly is malformed. */
    assert_int_equal(
        codec_frame_decode(&dec, frame.base, frame.len - 1, &out, NULL),
        CODEC_E_MALFORMED);
    /* The last byte completes it. */
    assert_int_equal(
        codec_splitter_feed(&s, (const uint8_t *)frame.base + frame.len - 1, 1,
                            &used, &out_frame),
        1);
    assert_int_equal(used, 1);
    assert_int_equal(
        codec_frame_decode(&dec, out_frame.base, out_frame.len, &out, NULL), 0);
    assert_message_equal(&smp.m, &out.raft);
    codec_splitter_close(&s);
    codec_arena_close(&enc);
    codec_arena_close(&dec);
}

static void splitter_zero_length_frame(void **state)
{
    struct codec_splitter s;
    struct codec_arena arena;
    struct raft_buf frame;
    struct codec_frame out;
    const uint8_t zero[] = {0, 0, 0, 0, 0, 0};
    size_t used;

    (void)state;
    codec_arena_init(&arena, 1u << 16);
    codec_splitter_init(&s, 16);
    /* Byte by byte, the empty body completes with the prefix. */
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(codec_splitter_feed(&s, zero + i, 1, &used, &frame),
                         0);
    }
    assert_int_equal(codec_splitter_feed(&s, zero + 3, 1, &used, &frame), 1);
    assert_int_equal(frame.len, 4);
    assert_int_equal(
        codec_frame_decode(&arena, frame.base, frame.len, &out, NULL),
        CODEC_E_MALFORMED);
    /* A trailing partial prefix is held. */
    assert_int_equal(codec_splitter_feed(&s, zero + 4, 2, &used, &frame), 0);
    assert_int_equal(used, 2);
    codec_splitter_close(&s);
    codec_arena_close(&arena);
}

/* Random bytes never crash the splitter or the decoder. */
static void splitter_and_decoder_survive_garbage(void **state)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint8_t buf[4096];

    (void)state;
    for (int round = 0; round < 2000; round++) {
        struct codec_splitter s;
        struct codec_arena arena;
        size_t len;
        size_t off = 0;

        for (size_t i = 0; i < sizeof(buf); i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
        /* Small prefixes half of the time, so that frames get cut out. */
        if (round % 2 == 0) {
            buf[0] = 0;
            buf[1] = 0;
            buf[2] = (uint8_t)((x >> 40) & 0x07);
        }
        len = (size_t)(x >> 8) % sizeof(buf);
        codec_splitter_init(&s, 2048);
        codec_arena_init(&arena, 1u << 20);
        while (off < len) {
            struct raft_buf frame;
            struct codec_frame out;
            char errmsg[CODEC_ERRMSG_SIZE];
            size_t step = 1 + (size_t)(x >> 20) % 97;
            size_t used;
            int rv;
            if (step > len - off) {
                step = len - off;
            }
            rv = codec_splitter_feed(&s, buf + off, step, &used, &frame);
            if (rv < 0) {
                assert_int_equal(rv, CODEC_E_TOO_BIG);
                assert_true(strlen(s.errmsg) > 0);
                break;
            }
            off += used;
            if (rv == 1) {
                rv = codec_frame_decode(&arena, frame.base, frame.len, &out,
                                        errmsg);
                assert_true(rv == 0 || rv == CODEC_E_MALFORMED ||
                            rv == CODEC_E_NOMEM);
                if (rv == 0 && out.body == CODEC_BODY_RAFT) {
                    assert_int_equal(codec_raft_check(&out.raft, NULL), 0);
                }
                codec_arena_reset(&arena);
            }
        }
        codec_splitter_close(&s);
        codec_arena_close(&arena);
    }
}

/* ------------------------------------------------------------------------
 * Arena and errors
 * --------------------------------------------------------------------- */

static void arena_alignment_limits_and_reset(void **state)
{
    struct codec_arena arena;
    void *p;
    void *q;
    void *big;

    (void)state;
    codec_arena_init(&arena, 1u << 20);
    p = codec_arena_alloc(&arena, 1);
    q = codec_arena_alloc(&arena, 0);
    assert_non_null(p);
    assert_non_null(q);
    assert_ptr_not_equal(p, q);
    assert_int_equal((uintptr_t)q % _Alignof(max_align_t), 0);
    big = codec_arena_alloc(&arena, 512u << 10); /* its own block */
    assert_non_null(big);
    memset(big, 1, 512u << 10);
    assert_null(codec_arena_alloc(&arena, 1u << 20));
    assert_true(arena.full);
    assert_true(arena.bytes <= arena.bytes_max);
    assert_null(codec_arena_alloc(&arena, SIZE_MAX));
    /* Reset keeps at most one small block. */
    codec_arena_reset(&arena);
    assert_false(arena.full);
    assert_true(arena.bytes <= (256u << 10) + 64);
    p = codec_arena_alloc(&arena, 100);
    assert_non_null(p);
    codec_arena_close(&arena);
    assert_null(arena.head);
    assert_int_equal(arena.bytes, 0);
    /* A zero limit allocates nothing. */
    codec_arena_init(&arena, 0);
    assert_null(codec_arena_alloc(&arena, 1));
    codec_arena_close(&arena);
}

static void strerror_covers_codes(void **state)
{
    (void)state;
    assert_string_equal(codec_strerror(0), "success");
    assert_non_null(strstr(codec_strerror(CODEC_E_TOO_BIG), "size limit"));
    assert_non_null(strstr(codec_strerror(CODEC_E_MALFORMED), "malformed"));
    assert_non_null(codec_strerror(CODEC_E_NOMEM));
    assert_non_null(codec_strerror(CODEC_E_INVALID));
    assert_string_equal(codec_strerror(-1000), "unknown codec error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip_every_type),
        cmocka_unit_test(roundtrip_minimal_heartbeat),
        cmocka_unit_test(roundtrip_snapshot_plain_config_and_empty_chunk),
        cmocka_unit_test(roundtrip_limits_fit_recommended_arena),
        cmocka_unit_test(roundtrip_hello),
        cmocka_unit_test(roundtrip_partition_command),
        cmocka_unit_test(encode_rejects_invalid_messages),
        cmocka_unit_test(encode_refuses_oversized_frames),
        cmocka_unit_test(decode_rejects_bad_prefix_and_garbage),
        cmocka_unit_test(decode_rejects_bad_raft_messages),
        cmocka_unit_test(decode_rejects_too_many_entries),
        cmocka_unit_test(decode_rejects_bad_hello),
        cmocka_unit_test(decode_respects_arena_limit),
        cmocka_unit_test(splitter_byte_by_byte_and_chunked),
        cmocka_unit_test(splitter_many_frames_in_one_chunk_zero_copy),
        cmocka_unit_test(splitter_frame_split_across_chunks),
        cmocka_unit_test(splitter_rejects_oversized_length),
        cmocka_unit_test(splitter_truncated_frame_waits),
        cmocka_unit_test(splitter_zero_length_frame),
        cmocka_unit_test(splitter_and_decoder_survive_garbage),
        cmocka_unit_test(arena_alignment_limits_and_reset),
        cmocka_unit_test(strerror_covers_codes),
    };
    return cmocka_run_group_tests_name("broker-codec", tests, NULL, NULL);
}
