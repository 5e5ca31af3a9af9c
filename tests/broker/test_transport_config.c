/* test_transport_config.c: the cluster configuration spreading over
 * gossip (broker/transport_tcp.c, broker/codec.c), with real packed
 * configurations (broker/cluster_config.h).
 *
 * Codec: a gossip frame advertises a version and, optionally, carries the
 * bytes; old decoders read such frames; bytes without a version are
 * refused on both sides.
 *
 * Transport: three transports on one libuv loop on 127.0.0.1 (ephemeral
 * ports, gossip every 50 ms). Node 1 holds version 2, nodes 2 and 3
 * version 1. Within a bounded time nodes 2 and 3 are offered version 2
 * with node 1's exact bytes, adopt it, and are never offered a version at
 * or below the one they hold; node 1 is never offered anything; once
 * converged, gossip stops carrying the bytes. A node that refuses an offer
 * is not asked again before the dead interval has passed. The setter
 * never lets the version go backwards. Every test closes its loop
 * cleanly. */
#define _POSIX_C_SOURCE 200809L /* uv.h needs POSIX types */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/cluster_config.h"
#include "broker/codec.h"
#include "broker/placement.h"
#include "broker/transport.h"
#include "broker/transport_impl.h"
#include "proto/proto.h"

#define NODES 3
#define TIMEOUT_MS 10000
#define GOSSIP_MS 50
#define DEAD_INTERVALS 10
#define CLUSTER "tandem-config-test"

/* ------------------------------------------------------------------------
 * Packed configurations
 * --------------------------------------------------------------------- */

struct packed {
    uint8_t bytes[CLUSTER_CONFIG_BYTES_MAX];
    size_t len;
};

static struct broker_placement placement_buf;
static struct cluster_config config_buf;

/* Packs version of the 3-broker placement; priority_bump changes the
 * content so that versions differ in bytes too. */
static void packed_make(struct packed *p, uint64_t version,
                        uint8_t priority_bump)
{
    assert_int_equal(
        broker_placement_compute_static(&placement_buf, NODES, 3, 3), 0);
    assert_int_equal(cluster_config_from_placement(&placement_buf,
                                                   &config_buf),
                     0);
    config_buf.version = version;
    config_buf.partitions[0].replicas[0].priority =
        (uint8_t)(config_buf.partitions[0].replicas[0].priority +
                  priority_bump);
    assert_int_equal(cluster_config_encode(&config_buf, p->bytes,
                                           sizeof(p->bytes), &p->len),
                     0);
}

/* ------------------------------------------------------------------------
 * Codec
 * --------------------------------------------------------------------- */

static struct packed v2;

static void gossip_frame_carries_config(void **state)
{
    struct codec_gossip_member m = {1,       "127.0.0.1", 26502, "", 0,
                                    "0.1.0", 5};
    struct codec_gossip g = {&m, 1};
    struct codec_gossip out;
    struct codec_gossip_config cfg = {2, NULL, 0};
    struct codec_gossip_config got;
    struct codec_arena arena;
    struct raft_buf frame;
    char errmsg[CODEC_ERRMSG_SIZE];

    (void)state;
    packed_make(&v2, 2, 0);
    codec_arena_init(&arena, CODEC_ARENA_BYTES_FOR(CODEC_FRAME_BYTES_DEFAULT));
    /* Version only. */
    assert_int_equal(codec_gossip_encode_ex(&arena, &g, &cfg,
                                            CODEC_FRAME_BYTES_DEFAULT, &frame),
                     0);
    assert_int_equal(codec_gossip_decode_ex(&arena, frame.base, frame.len,
                                            &out, &got, errmsg),
                     0);
    assert_int_equal(got.version, 2);
    assert_int_equal(got.len, 0);
    assert_null(got.bytes);
    /* Version and bytes; the old decoder reads the members. */
    cfg.bytes = v2.bytes;
    cfg.len = v2.len;
    assert_int_equal(codec_gossip_encode_ex(&arena, &g, &cfg,
                                            CODEC_FRAME_BYTES_DEFAULT, &frame),
                     0);
    assert_int_equal(codec_gossip_decode_ex(&arena, frame.base, frame.len,
                                            &out, &got, errmsg),
                     0);
    assert_int_equal(got.version, 2);
    assert_int_equal(got.len, v2.len);
    assert_memory_equal(got.bytes, v2.bytes, v2.len);
    assert_int_equal(codec_gossip_decode(&arena, frame.base, frame.len, &out,
                                         errmsg),
                     0);
    assert_int_equal(out.count, 1);
    assert_int_equal(out.members[0].heartbeat, 5);
    /* A plain frame advertises version 0. */
    assert_int_equal(codec_gossip_encode(&arena, &g, CODEC_FRAME_BYTES_DEFAULT,
                                         &frame),
                     0);
    assert_int_equal(codec_gossip_decode_ex(&arena, frame.base, frame.len,
                                            &out, &got, errmsg),
                     0);
    assert_int_equal(got.version, 0);
    /* Bytes without a version, or above the limit, are refused. */
    cfg.version = 0;
    assert_int_equal(codec_gossip_encode_ex(&arena, &g, &cfg,
                                            CODEC_FRAME_BYTES_DEFAULT, &frame),
                     CODEC_E_INVALID);
    cfg.version = 2;
    cfg.len = CODEC_GOSSIP_CONFIG_BYTES_MAX + 1;
    assert_int_equal(codec_gossip_encode_ex(&arena, &g, &cfg,
                                            CODEC_FRAME_BYTES_DEFAULT, &frame),
                     CODEC_E_INVALID);
    codec_arena_close(&arena);
}

/* A hand-packed frame with bytes and version 0 fails decoding. */
static void gossip_decode_refuses_bytes_without_version(void **state)
{
    Tandem__Raft__Frame f = TANDEM__RAFT__FRAME__INIT;
    Tandem__Raft__MemberList ml = TANDEM__RAFT__MEMBER_LIST__INIT;
    struct codec_gossip out;
    struct codec_gossip_config got;
    struct codec_arena arena;
    uint8_t buf[256];
    uint8_t payload[3] = {1, 2, 3};
    size_t n;
    char errmsg[CODEC_ERRMSG_SIZE];

    (void)state;
    ml.cluster_config.data = payload;
    ml.cluster_config.len = sizeof(payload);
    f.body_case = TANDEM__RAFT__FRAME__BODY_MEMBERS;
    f.members = &ml;
    n = tandem__raft__frame__pack(&f, buf + 4);
    buf[0] = (uint8_t)(n >> 24);
    buf[1] = (uint8_t)(n >> 16);
    buf[2] = (uint8_t)(n >> 8);
    buf[3] = (uint8_t)n;
    codec_arena_init(&arena, 1 << 20);
    errmsg[0] = '\0';
    assert_int_equal(codec_gossip_decode_ex(&arena, buf, n + 4, &out, &got,
                                            errmsg),
                     CODEC_E_MALFORMED);
    assert_non_null(strstr(errmsg, "version 0"));
    assert_int_equal(got.len, 0);
    codec_arena_close(&arena);
}

/* ------------------------------------------------------------------------
 * Transport harness
 * --------------------------------------------------------------------- */

struct node {
    struct transport *t;
    uint32_t id;
    bool closed;
    bool refuse;            /* the callback refuses every offer */
    uint64_t held;          /* the version the node holds */
    size_t offers;          /* callback calls */
    uint64_t offered_min;   /* smallest version offered */
    uint8_t got[CLUSTER_CONFIG_BYTES_MAX]; /* bytes of the last adoption */
    size_t got_len;
};

static void on_raft(void *data, uint32_t from, uint32_t partition,
                    const struct raft_message *m)
{
    (void)data;
    (void)from;
    (void)partition;
    (void)m;
    fail_msg("no raft traffic in these tests");
}

/* The broker's part, as broker.c is to do it: decode and validate the
 * bytes, check the version they claim, then adopt (return 0). */
static int on_cluster_config(void *data, uint32_t from_node, uint64_t version,
                             const void *bytes, size_t len)
{
    struct node *n = data;
    char err[CLUSTER_CONFIG_ERRMSG_SIZE];

    assert_int_not_equal(from_node, n->id);
    assert_true(version > n->held); /* never a lower or equal version */
    assert_true(version > transport_cluster_config_version(n->t));
    n->offers++;
    if (n->offered_min == 0 || version < n->offered_min) {
        n->offered_min = version;
    }
    if (n->refuse) {
        return -1;
    }
    assert_int_equal(cluster_config_decode(bytes, len, &config_buf, err,
                                           sizeof(err)),
                     0);
    assert_int_equal(config_buf.version, version);
    memcpy(n->got, bytes, len);
    n->got_len = len;
    n->held = version;
    return 0;
}

static void test_log(void *data, enum transport_log_level level,
                     uint32_t node_id, const char *message)
{
    (void)data;
    if (getenv("TRANSPORT_TEST_VERBOSE") != NULL) {
        fprintf(stderr, "[%u] %d %s\n", (unsigned)node_id, (int)level, message);
    }
}

static void node_close_cb(struct transport *t)
{
    struct node *n = transport_data(t);
    n->closed = true;
}

struct cluster {
    uv_loop_t loop;
    struct node nodes[NODES];
    size_t count;
};

typedef bool (*cond_fn)(void *ctx);

/* Runs the loop until cond(ctx) holds; false on timeout. */
static bool run_until(uv_loop_t *loop, cond_fn cond, void *ctx,
                      uint64_t timeout_ms)
{
    uint64_t deadline = uv_hrtime() + timeout_ms * 1000000u;
    while (!cond(ctx)) {
        if (uv_hrtime() > deadline) {
            return false;
        }
        uv_run(loop, UV_RUN_ONCE);
    }
    return true;
}

static bool never(void *ctx)
{
    (void)ctx;
    return false;
}

static void run_for(uv_loop_t *loop, uint64_t ms)
{
    (void)run_until(loop, never, NULL, ms);
}

/* Starts node id holding config (may be NULL), dialling contact (may be
 * NULL). */
static void node_start(struct cluster *c, size_t i, const struct packed *cfg,
                       uint64_t version, const char *contact)
{
    struct node *n = &c->nodes[i];
    struct transport_options o;
    struct transport_callbacks cb;
    const char *contacts[1] = {contact};

    memset(n, 0, sizeof(*n));
    n->id = (uint32_t)(i + 1);
    transport_options_default(&o, n->id);
    o.cluster_name = CLUSTER;
    o.listen_host = "127.0.0.1";
    o.reconnect_ms_min = 10;
    o.reconnect_ms_max = 200;
    o.gossip_interval_ms = GOSSIP_MS;
    o.dead_intervals = DEAD_INTERVALS;
    o.log = test_log;
    o.log_level = TRANSPORT_LOG_DEBUG;
    memset(&cb, 0, sizeof(cb));
    cb.on_raft = on_raft;
    cb.data = n;
    assert_int_equal(transport_init(&c->loop, &n->t, &o, &cb), 0);
    assert_int_equal(transport_cluster_config_version(n->t), 0);
    transport_set_cluster_config_cb(n->t, on_cluster_config, n);
    if (cfg != NULL) {
        assert_int_equal(transport_set_cluster_config(n->t, version,
                                                      cfg->bytes, cfg->len),
                         0);
        n->held = version;
    }
    assert_int_equal(transport_start(n->t, contacts, contact != NULL ? 1 : 0),
                     0);
    c->count = i + 1 > c->count ? i + 1 : c->count;
}

static bool cluster_closed(void *ctx)
{
    struct cluster *c = ctx;
    for (size_t i = 0; i < c->count; i++) {
        if (!c->nodes[i].closed) {
            return false;
        }
    }
    return true;
}

static void cluster_down(struct cluster *c)
{
    for (size_t i = 0; i < c->count; i++) {
        transport_close(c->nodes[i].t, node_close_cb);
    }
    assert_true(run_until(&c->loop, cluster_closed, c, TIMEOUT_MS));
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&c->loop), 0);
}

static bool followers_have_v2(void *ctx)
{
    struct cluster *c = ctx;
    return c->nodes[1].held == 2 && c->nodes[2].held == 2;
}

/* ------------------------------------------------------------------------
 * Transport tests
 * --------------------------------------------------------------------- */

static struct packed v1;

static void newer_config_spreads_to_every_node(void **state)
{
    struct cluster c;
    char contact[32];
    uint64_t sent[NODES];

    (void)state;
    packed_make(&v1, 1, 0);
    packed_make(&v2, 2, 1);
    assert_true(v1.len != v2.len || memcmp(v1.bytes, v2.bytes, v1.len) != 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(uv_loop_init(&c.loop), 0);
    node_start(&c, 0, &v2, 2, NULL);
    snprintf(contact, sizeof(contact), "127.0.0.1:%d",
             transport_bound_port(c.nodes[0].t));
    node_start(&c, 1, &v1, 1, contact);
    /* Node 3 knows only node 2: the version reaches it either from node 2
     * after its adoption or from node 1 once gossip introduced them. */
    snprintf(contact, sizeof(contact), "127.0.0.1:%d",
             transport_bound_port(c.nodes[1].t));
    node_start(&c, 2, &v1, 1, contact);

    assert_true(run_until(&c.loop, followers_have_v2, &c, TIMEOUT_MS));
    for (size_t i = 1; i < NODES; i++) {
        struct node *n = &c.nodes[i];
        assert_int_equal(n->got_len, v2.len);
        assert_memory_equal(n->got, v2.bytes, v2.len);
        assert_int_equal(n->offered_min, 2);
        assert_int_equal(transport_cluster_config_version(n->t), 2);
    }
    assert_int_equal(c.nodes[0].offers, 0);
    assert_int_equal(transport_cluster_config_version(c.nodes[0].t), 2);

    /* Converged: after a few more intervals (every node has heard every
     * other's version 2), gossip stops carrying the bytes. */
    run_for(&c.loop, 6 * GOSSIP_MS);
    for (size_t i = 0; i < NODES; i++) {
        const struct transport_member *ms;
        size_t count;
        sent[i] = transport__stats_get(c.nodes[i].t)->config_sent_count;
        assert_int_equal(transport_members(c.nodes[i].t, &ms, &count), 0);
        assert_int_equal(count, NODES);
        for (size_t k = 0; k < count; k++) {
            assert_int_equal(ms[k].config_version, 2);
        }
    }
    run_for(&c.loop, 6 * GOSSIP_MS);
    for (size_t i = 0; i < NODES; i++) {
        const struct transport_stats *st = transport__stats_get(c.nodes[i].t);
        assert_int_equal(st->config_sent_count, sent[i]);
        assert_true(st->gossip_sent_count > st->config_sent_count);
        assert_int_equal(st->config_refused_count, 0);
    }
    /* Node 1 was the source: it carried the bytes at least once. */
    assert_true(sent[0] >= 1);
    cluster_down(&c);
}

static bool offered(void *ctx)
{
    const struct node *n = ctx;
    return n->offers > 0;
}

static void refused_offer_waits_for_the_dead_interval(void **state)
{
    struct cluster c;
    char contact[32];
    struct node *b;

    (void)state;
    packed_make(&v1, 1, 0);
    packed_make(&v2, 2, 1);
    memset(&c, 0, sizeof(c));
    assert_int_equal(uv_loop_init(&c.loop), 0);
    node_start(&c, 0, &v2, 2, NULL);
    snprintf(contact, sizeof(contact), "127.0.0.1:%d",
             transport_bound_port(c.nodes[0].t));
    node_start(&c, 1, &v1, 1, contact);
    b = &c.nodes[1];
    b->refuse = true;
    assert_true(run_until(&c.loop, offered, b, TIMEOUT_MS));
    assert_int_equal(b->offers, 1);
    /* Node 1 keeps sending (node 2 still advertises 1), node 2 does not
     * ask its broker again within the dead interval... */
    run_for(&c.loop, (DEAD_INTERVALS / 2) * GOSSIP_MS);
    assert_int_equal(b->offers, 1);
    assert_int_equal(transport__stats_get(b->t)->config_refused_count, 1);
    assert_int_equal(transport_cluster_config_version(b->t), 1);
    /* ...but does after it, and adopts once the broker accepts. */
    b->refuse = false;
    run_for(&c.loop, (DEAD_INTERVALS + 4) * GOSSIP_MS);
    assert_int_equal(b->offers, 2);
    assert_int_equal(b->held, 2);
    assert_int_equal(transport_cluster_config_version(b->t), 2);
    cluster_down(&c);
}

static void setter_never_goes_backwards(void **state)
{
    uv_loop_t loop;
    struct transport *t;
    struct transport_options o;
    struct transport_callbacks cb;
    bool closed = false;
    uint8_t other[4] = {9, 9, 9, 9};

    (void)state;
    packed_make(&v1, 1, 0);
    packed_make(&v2, 2, 1);
    assert_int_equal(uv_loop_init(&loop), 0);
    transport_options_default(&o, 7);
    o.listen_host = "127.0.0.1";
    o.log = test_log;
    memset(&cb, 0, sizeof(cb));
    cb.on_raft = on_raft;
    cb.data = &closed;
    assert_int_equal(transport_init(&loop, &t, &o, &cb), 0);
    assert_int_equal(transport_set_cluster_config(t, 0, v1.bytes, v1.len),
                     TRANSPORT_E_INVALID);
    assert_int_equal(transport_set_cluster_config(t, 1, NULL, 4),
                     TRANSPORT_E_INVALID);
    assert_int_equal(transport_set_cluster_config(t, 1, v1.bytes, 0),
                     TRANSPORT_E_INVALID);
    assert_int_equal(transport_set_cluster_config(
                         t, 1, v1.bytes, TRANSPORT_CLUSTER_CONFIG_BYTES_MAX + 1),
                     TRANSPORT_E_INVALID);
    assert_int_equal(transport_set_cluster_config(t, 2, v2.bytes, v2.len), 0);
    assert_int_equal(transport_set_cluster_config(t, 2, v2.bytes, v2.len), 0);
    assert_int_equal(transport_set_cluster_config(t, 2, other, sizeof(other)),
                     TRANSPORT_E_INVALID);
    assert_int_equal(transport_set_cluster_config(t, 1, v1.bytes, v1.len),
                     TRANSPORT_E_INVALID);
    assert_int_equal(transport_cluster_config_version(t), 2);
    assert_int_equal(transport_set_cluster_config(t, 3, other, sizeof(other)),
                     0);
    assert_int_equal(transport_cluster_config_version(t), 3);
    transport_close(t, NULL);
    assert_int_equal(transport_set_cluster_config(t, 4, other, sizeof(other)),
                     TRANSPORT_E_STATE);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gossip_frame_carries_config),
        cmocka_unit_test(gossip_decode_refuses_bytes_without_version),
        cmocka_unit_test(newer_config_spreads_to_every_node),
        cmocka_unit_test(refused_offer_waits_for_the_dead_interval),
        cmocka_unit_test(setter_never_goes_backwards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
