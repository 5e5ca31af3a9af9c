/* test_codec_gossip.c: unit tests of the gossip frames of broker/codec.c.
 *
 * A member table is encoded, cut out of a stream by the splitter and
 * decoded back unchanged; codec_frame_decode() refuses gossip frames and
 * codec_gossip_decode() refuses every other body; invalid members are
 * refused on both sides; the arena limit holds. */
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

static char long_host[CODEC_GOSSIP_HOST_MAX + 2];

static void sample_members(struct codec_gossip_member ms[3])
{
    memset(ms, 0, 3 * sizeof(*ms));
    ms[0] = (struct codec_gossip_member){1,     "10.0.0.1", 26502, "10.0.0.1",
                                         26501, "0.1.0",    7};
    ms[1] = (struct codec_gossip_member){
        UINT32_MAX, "broker-2.example", 65535, "", 0, "", 1};
    ms[2] = (struct codec_gossip_member){UINT64_MAX, "::1", 1,         "::1",
                                         1,          "v",   UINT64_MAX};
}

static void member_equal(const struct codec_gossip_member *a,
                         const struct codec_gossip_member *b)
{
    assert_int_equal(a->node_id, b->node_id);
    assert_string_equal(a->host, b->host);
    assert_int_equal(a->port, b->port);
    assert_string_equal(a->command_host, b->command_host);
    assert_int_equal(a->command_port, b->command_port);
    assert_string_equal(a->version, b->version);
    assert_int_equal(a->heartbeat, b->heartbeat);
}

static void gossip_roundtrip_through_splitter(void **state)
{
    struct codec_gossip_member ms[3];
    struct codec_gossip g = {ms, 3};
    struct codec_gossip out;
    struct codec_arena enc;
    struct codec_arena dec;
    struct codec_splitter s;
    struct raft_buf frame;
    struct raft_buf cut;
    size_t used;
    char errmsg[CODEC_ERRMSG_SIZE];

    (void)state;
    sample_members(ms);
    codec_arena_init(&enc, ARENA_BYTES);
    codec_arena_init(&dec, ARENA_BYTES);
    assert_int_equal(
        codec_gossip_encode(&enc, &g, CODEC_FRAME_BYTES_DEFAULT, &frame), 0);
    codec_splitter_init(&s, CODEC_FRAME_BYTES_DEFAULT);
    /* Two halves: the frame is assembled inside the splitter. */
    assert_int_equal(
        codec_splitter_feed(&s, frame.base, frame.len / 2, &used, &cut), 0);
    assert_int_equal(used, frame.len / 2);
    assert_int_equal(codec_splitter_feed(&s, (const uint8_t *)frame.base + used,
                                         frame.len - used, &used, &cut),
                     1);
    assert_int_equal(cut.len, frame.len);
    assert_int_equal(codec_gossip_decode(&dec, cut.base, cut.len, &out, errmsg),
                     0);
    assert_int_equal(out.count, 3);
    for (size_t i = 0; i < 3; i++) {
        member_equal(&out.members[i], &ms[i]);
    }
    codec_splitter_close(&s);

    /* An empty table is a valid frame too. */
    g.count = 0;
    assert_int_equal(
        codec_gossip_encode(&enc, &g, CODEC_FRAME_BYTES_DEFAULT, &frame), 0);
    assert_int_equal(
        codec_gossip_decode(&dec, frame.base, frame.len, &out, errmsg), 0);
    assert_int_equal(out.count, 0);
    codec_arena_close(&enc);
    codec_arena_close(&dec);
}

static void gossip_and_raft_decoders_refuse_each_other(void **state)
{
    struct codec_gossip_member ms[3];
    struct codec_gossip g = {ms, 3};
    struct codec_gossip out;
    struct codec_frame f;
    struct codec_hello hello = {PROTO_RAFT_VERSION, 3, "c"};
    struct raft_message m;
    struct codec_arena arena;
    struct raft_buf frame;
    char errmsg[CODEC_ERRMSG_SIZE];

    (void)state;
    sample_members(ms);
    codec_arena_init(&arena, ARENA_BYTES);
    assert_int_equal(
        codec_gossip_encode(&arena, &g, CODEC_FRAME_BYTES_DEFAULT, &frame), 0);
    assert_int_equal(
        codec_frame_decode(&arena, frame.base, frame.len, &f, errmsg),
        CODEC_E_MALFORMED);

    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_VOTE;
    m.from = 1;
    m.to = 2;
    m.term = 9;
    assert_int_equal(
        codec_raft_encode(&arena, 0, &m, CODEC_FRAME_BYTES_DEFAULT, &frame), 0);
    assert_int_equal(
        codec_gossip_decode(&arena, frame.base, frame.len, &out, errmsg),
        CODEC_E_MALFORMED);
    assert_non_null(strstr(errmsg, "not a gossip frame"));
    assert_null(out.members);
    assert_int_equal(codec_hello_encode(&arena, &hello, &frame), 0);
    assert_int_equal(
        codec_gossip_decode(&arena, frame.base, frame.len, &out, errmsg),
        CODEC_E_MALFORMED);
    codec_arena_close(&arena);
}

static void gossip_encode_rejects_invalid_members(void **state)
{
    struct codec_gossip_member ms[3];
    struct codec_gossip g = {ms, 3};
    struct codec_arena arena;
    struct raft_buf frame;

    (void)state;
    memset(long_host, 'h', sizeof(long_host) - 1);
    codec_arena_init(&arena, ARENA_BYTES);
#define REJECTED(mutation)                                                     \
    do {                                                                       \
        sample_members(ms);                                                    \
        mutation;                                                              \
        assert_int_equal(codec_gossip_encode(                                  \
                             &arena, &g, CODEC_FRAME_BYTES_DEFAULT, &frame),   \
                         CODEC_E_INVALID);                                     \
        assert_int_equal(frame.len, 0);                                        \
    } while (0)
    REJECTED(ms[1].node_id = 0);
    REJECTED(ms[1].port = 0);
    REJECTED(ms[1].heartbeat = 0);
    REJECTED(ms[1].host = NULL);
    REJECTED(ms[1].host = "");
    REJECTED(ms[1].host = long_host);
    REJECTED(ms[1].command_host = long_host);
    REJECTED(ms[1].command_host = NULL);
    REJECTED(ms[1].version = NULL);
    REJECTED(ms[1].version = long_host);
    REJECTED(g.count = CODEC_GOSSIP_MEMBERS_MAX + 1);
#undef REJECTED
    g.count = 3;
    sample_members(ms);
    assert_int_equal(codec_gossip_encode(&arena, &g, 16, &frame),
                     CODEC_E_TOO_BIG);
    codec_arena_close(&arena);
}

/* Packs a Frame with hand-made members, as a hostile peer could. */
static size_t pack_raw(Tandem__Raft__GossipMember *gm, size_t n,
                       uint32_t partition, uint8_t *buf)
{
    Tandem__Raft__Frame f = TANDEM__RAFT__FRAME__INIT;
    Tandem__Raft__MemberList ml = TANDEM__RAFT__MEMBER_LIST__INIT;
    Tandem__Raft__GossipMember *ptrs[4];
    size_t len;

    assert_true(n <= 4);
    for (size_t i = 0; i < n; i++) {
        ptrs[i] = &gm[i];
    }
    ml.n_members = n;
    ml.members = ptrs;
    f.partition = partition;
    f.body_case = TANDEM__RAFT__FRAME__BODY_MEMBERS;
    f.members = &ml;
    len = tandem__raft__frame__pack(&f, buf + CODEC_PREFIX_BYTES);
    buf[0] = (uint8_t)(len >> 24);
    buf[1] = (uint8_t)(len >> 16);
    buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    return len + CODEC_PREFIX_BYTES;
}

static void gossip_decode_rejects_hostile_frames(void **state)
{
    Tandem__Raft__GossipMember gm;
    struct codec_gossip out;
    struct codec_arena arena;
    uint8_t buf[1024];
    char errmsg[CODEC_ERRMSG_SIZE];
    size_t len;
    static const uint8_t garbage[] = {0, 0, 0, 3, 0xff, 0xff, 0xff};

    (void)state;
    codec_arena_init(&arena, ARENA_BYTES);
#define HOSTILE(mutation, partition)                                           \
    do {                                                                       \
        tandem__raft__gossip_member__init(&gm);                                \
        gm.node_id = 5;                                                        \
        gm.host = "h";                                                         \
        gm.port = 1;                                                           \
        gm.heartbeat = 1;                                                      \
        mutation;                                                              \
        len = pack_raw(&gm, 1, partition, buf);                                \
        errmsg[0] = '\0';                                                      \
        assert_int_equal(codec_gossip_decode(&arena, buf, len, &out, errmsg),  \
                         CODEC_E_MALFORMED);                                   \
        assert_true(strlen(errmsg) > 0);                                       \
        assert_int_equal(out.count, 0);                                        \
    } while (0)
    HOSTILE(gm.port = 65536, 0);
    HOSTILE(gm.command_port = 70000, 0);
    HOSTILE(gm.node_id = 0, 0);
    HOSTILE(gm.heartbeat = 0, 0);
    HOSTILE(gm.host = "", 0);
    HOSTILE((void)0, 7); /* gossip belongs to partition 0 */
#undef HOSTILE
    /* The same member with sane values decodes. */
    tandem__raft__gossip_member__init(&gm);
    gm.node_id = 5;
    gm.host = "h";
    gm.port = 1;
    gm.heartbeat = 1;
    len = pack_raw(&gm, 1, 0, buf);
    assert_int_equal(codec_gossip_decode(&arena, buf, len, &out, errmsg), 0);
    assert_int_equal(out.count, 1);
    assert_string_equal(out.members[0].command_host, "");
    /* Prefix mismatch, garbage, truncation. */
    assert_int_equal(codec_gossip_decode(&arena, buf, len - 1, &out, errmsg),
                     CODEC_E_MALFORMED);
    assert_int_equal(
        codec_gossip_decode(&arena, garbage, sizeof(garbage), &out, errmsg),
        CODEC_E_MALFORMED);
    assert_int_equal(codec_gossip_decode(&arena, buf, 2, &out, NULL),
                     CODEC_E_MALFORMED);
    codec_arena_close(&arena);
}

static void gossip_decode_respects_arena_limit(void **state)
{
    struct codec_gossip_member ms[3];
    struct codec_gossip g = {ms, 3};
    struct codec_gossip out;
    struct codec_arena enc;
    struct codec_arena tiny;
    struct raft_buf frame;
    char errmsg[CODEC_ERRMSG_SIZE];

    (void)state;
    sample_members(ms);
    codec_arena_init(&enc, ARENA_BYTES);
    codec_arena_init(&tiny, 64);
    assert_int_equal(
        codec_gossip_encode(&enc, &g, CODEC_FRAME_BYTES_DEFAULT, &frame), 0);
    assert_int_equal(
        codec_gossip_decode(&tiny, frame.base, frame.len, &out, errmsg),
        CODEC_E_NOMEM);
    assert_true(tiny.full);
    codec_arena_close(&enc);
    codec_arena_close(&tiny);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gossip_roundtrip_through_splitter),
        cmocka_unit_test(gossip_and_raft_decoders_refuse_each_other),
        cmocka_unit_test(gossip_encode_rejects_invalid_members),
        cmocka_unit_test(gossip_decode_rejects_hostile_frames),
        cmocka_unit_test(gossip_decode_respects_arena_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
