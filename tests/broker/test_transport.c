/* test_transport.c: tests of broker/transport_tcp.c over real TCP.
 *
 * Every test runs transports (node ids 1..3) on one libuv loop in this
 * process, listening on ephemeral ports of 127.0.0.1, with short timers
 * (gossip every 50 ms, reconnects 10..200 ms). run_until() turns the loop
 * until a condition holds or a deadline passes, so every test is bounded
 * in time; each ends by closing everything and checking uv_loop_close().
 *
 * Covered: discovery through one contact point (gossip), delivery of raft
 * messages of several partitions with payloads and snapshot chunks, one
 * uv_write per peer per flush, resolution of simultaneous dials to one
 * connection dialled by the lower id, restart of a broker on the same
 * port, the per-peer queue limit, hostile raw sockets (garbage, oversized
 * prefix, wrong cluster name or version, garbage after a Hello) and the
 * argument and state errors of the API. */
#define _POSIX_C_SOURCE 200809L /* uv.h needs POSIX types */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/codec.h"
#include "broker/transport.h"
#include "broker/transport_impl.h"
#include "proto/proto.h"

#define NODES_MAX 3
#define RECV_MAX 1024
#define TIMEOUT_MS 10000
#define CLUSTER "tandem-test"

/* ------------------------------------------------------------------------
 * Harness
 * --------------------------------------------------------------------- */

/* What a node noted about one received raft message. */
struct received {
    uint32_t from;
    uint32_t partition;
    uint8_t type;
    uint64_t term;
    uint64_t index;
    size_t entry_count;
    uint64_t payload_hash; /* FNV-1a over every entry payload and data */
    size_t payload_bytes;
    uint64_t offset;
    uint64_t total;
    bool done;
};

struct node {
    uv_loop_t *loop;
    struct transport *t;
    uint32_t id;
    int port;
    bool closed; /* close_cb ran */
    struct received recv[RECV_MAX];
    size_t recv_count;
    size_t member_events;
    size_t commands; /* PartitionCommand frames received */
    size_t rebalances; /* Rebalance frames received */
    uint32_t rebalance_from;
    size_t forwards; /* ManagementForward frames received */
    uint64_t forward_id;
    bool forward_reply;
    char forward_payload[64];
    uint32_t command_from;
    uint32_t command_partition;
    uint64_t command_key;
    bool command_ack;
    uint8_t command_record[16];
    size_t command_record_len;
    size_t peer_up;
    size_t peer_down;
    bool saw_cluster_log;
    bool saw_version_log;
};

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

static uint64_t message_hash(const struct raft_message *m, size_t *bytes)
{
    uint64_t h = 0xcbf29ce484222325ull;
    *bytes = 0;
    for (size_t i = 0; i < m->entry_count; i++) {
        h = fnv(h, m->entries[i].buf.base, m->entries[i].buf.len);
        *bytes += m->entries[i].buf.len;
    }
    h = fnv(h, m->data.base, m->data.len);
    *bytes += m->data.len;
    return h;
}

static void on_raft(void *data, uint32_t from, uint32_t partition,
                    const struct raft_message *m)
{
    struct node *n = data;
    struct received *r;

    assert_true(n->recv_count < RECV_MAX);
    r = &n->recv[n->recv_count++];
    r->from = from;
    r->partition = partition;
    r->type = m->type;
    r->term = m->term;
    r->index = m->index;
    r->entry_count = m->entry_count;
    r->payload_hash = message_hash(m, &r->payload_bytes);
    r->offset = m->offset;
    r->total = m->total;
    r->done = m->done;
}

static void on_command(void *data, uint32_t from, uint32_t partition,
                       const struct codec_command *c)
{
    struct node *n = data;
    n->commands++;
    n->command_from = from;
    n->command_partition = partition;
    n->command_key = c->distribution_key;
    n->command_ack = c->ack;
    n->command_record_len = c->record_len;
    if (c->record_len <= sizeof(n->command_record) && c->record != NULL) {
        memcpy(n->command_record, c->record, c->record_len);
    }
}

static void on_rebalance(void *data, uint32_t from)
{
    struct node *n = data;
    n->rebalances++;
    n->rebalance_from = from;
}

static void on_forward(void *data, uint32_t from, const struct codec_forward *fw)
{
    struct node *n = data;
    (void)from;
    n->forwards++;
    n->forward_id = fw->id;
    n->forward_reply = fw->reply;
    snprintf(n->forward_payload, sizeof(n->forward_payload), "%.*s",
             (int)fw->payload_len, (const char *)fw->payload);
}

static void on_member(void *data, const struct transport_member *m)
{
    struct node *n = data;
    assert_int_not_equal(m->node_id, n->id);
    n->member_events++;
}

static void on_peer(void *data, uint32_t node_id, bool connected)
{
    struct node *n = data;
    assert_int_not_equal(node_id, n->id);
    if (connected) {
        n->peer_up++;
    } else {
        n->peer_down++;
    }
}

static void test_log(void *data, enum transport_log_level level,
                     uint32_t node_id, const char *message)
{
    struct node *n = data;
    if (strstr(message, "cluster name") != NULL) {
        n->saw_cluster_log = true;
    }
    if (strstr(message, "protocol version") != NULL) {
        n->saw_version_log = true;
    }
    if (getenv("TRANSPORT_TEST_VERBOSE") != NULL) {
        fprintf(stderr, "[%u] %d %s\n", (unsigned)node_id, (int)level, message);
    }
}

static void node_close_cb(struct transport *t)
{
    struct node *n = transport_data(t);
    n->closed = true;
}

/* Initialises and starts node id on listen_port (0: ephemeral) with the
 * given contact points; queue_max 0 means the default. */
static void node_start(struct node *n, uv_loop_t *loop, uint32_t id,
                       uint16_t listen_port, const char *const *contacts,
                       size_t contact_count, size_t queue_max)
{
    struct transport_options o;
    struct transport_callbacks cb = {on_raft,    on_member,    on_peer,
                                     on_command, on_rebalance, on_forward,
                                     n};
    char command_host[32];

    memset(n, 0, sizeof(*n));
    n->loop = loop;
    n->id = id;
    snprintf(command_host, sizeof(command_host), "10.0.0.%u", (unsigned)id);
    transport_options_default(&o, id);
    o.cluster_name = CLUSTER;
    o.listen_host = "127.0.0.1";
    o.listen_port = listen_port;
    o.command_host = command_host;
    o.command_port = (uint16_t)(26500 + id);
    o.version = "0.1.0-test";
    o.peer_queue_bytes_max = queue_max;
    o.reconnect_ms_min = 10;
    o.reconnect_ms_max = 200;
    o.gossip_interval_ms = 50;
    o.seed = 1000 + id;
    o.log = test_log;
    o.log_data = n;
    o.log_level = TRANSPORT_LOG_DEBUG;
    assert_int_equal(transport_init(loop, &n->t, &o, &cb), 0);
    assert_int_equal(transport_bound_port(n->t), TRANSPORT_E_STATE);
    assert_int_equal(transport_start(n->t, contacts, contact_count), 0);
    n->port = transport_bound_port(n->t);
    assert_true(n->port > 0);
    if (listen_port != 0) {
        assert_int_equal(n->port, listen_port);
    }
}

static void node_close(struct node *n)
{
    assert_false(n->closed);
    transport_close(n->t, node_close_cb);
}

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

/* Runs the loop for ms milliseconds. */
static bool never(void *ctx)
{
    (void)ctx;
    return false;
}

static void run_for(uv_loop_t *loop, uint64_t ms)
{
    (void)run_until(loop, never, NULL, ms);
}

/* Finds a free port by binding one and closing it. */
static uint16_t port_reserve(uv_loop_t *loop)
{
    uv_tcp_t tcp;
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uint16_t port;

    assert_int_equal(uv_tcp_init(loop, &tcp), 0);
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
    assert_int_equal(uv_tcp_bind(&tcp, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_tcp_getsockname(&tcp, (struct sockaddr *)&ss, &len), 0);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&tcp, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return port;
}

struct cluster {
    uv_loop_t loop;
    struct node nodes[NODES_MAX];
    size_t count;
};

/* Every node knows every other as alive with both addresses, and has
 * exactly one established connection to it. */
static bool cluster_settled(void *ctx)
{
    struct cluster *c = ctx;
    for (size_t i = 0; i < c->count; i++) {
        const struct transport_member *ms;
        size_t count;
        struct node *n = &c->nodes[i];
        if (n->closed) {
            return false;
        }
        assert_int_equal(transport_members(n->t, &ms, &count), 0);
        if (count != c->count) {
            return false;
        }
        for (size_t k = 1; k < count; k++) {
            if (!ms[k].alive || !ms[k].connected || ms[k].port == 0 ||
                ms[k].command_port == 0 ||
                transport__conns_count(n->t, ms[k].node_id) != 1) {
                return false;
            }
        }
    }
    return true;
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

/* Starts count nodes; node 1 knows only itself, the others only node 1. */
static void cluster_up(struct cluster *c, size_t count, size_t queue_max)
{
    char contact[32];
    const char *contacts[1] = {contact};
    uint16_t port;

    assert_true(count <= NODES_MAX);
    memset(c, 0, sizeof(*c));
    assert_int_equal(uv_loop_init(&c->loop), 0);
    c->count = count;
    port = port_reserve(&c->loop);
    snprintf(contact, sizeof(contact), "127.0.0.1:%u", (unsigned)port);
    /* Node 1 gets its own address: a self-dial must be harmless. */
    node_start(&c->nodes[0], &c->loop, 1, port, contacts, 1, queue_max);
    for (size_t i = 1; i < count; i++) {
        /* The last node names node 1 by host name (getaddrinfo). */
        if (i == 2) {
            snprintf(contact, sizeof(contact), "localhost:%u", (unsigned)port);
        }
        node_start(&c->nodes[i], &c->loop, (uint32_t)(i + 1), 0, contacts, 1,
                   queue_max);
    }
    assert_true(run_until(&c->loop, cluster_settled, c, TIMEOUT_MS));
}

static void cluster_down(struct cluster *c)
{
    for (size_t i = 0; i < c->count; i++) {
        if (!c->nodes[i].closed) {
            node_close(&c->nodes[i]);
        }
    }
    assert_true(run_until(&c->loop, cluster_closed, c, TIMEOUT_MS));
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&c->loop), 0);
}

/* Waits for no write in flight, so the next flush starts fresh writes. */
static bool writes_idle(void *ctx)
{
    return transport__writes_inflight(ctx) == 0;
}

/* ------------------------------------------------------------------------
 * Messages
 * --------------------------------------------------------------------- */

/* Deterministic payload bytes. */
static uint8_t *payload_new(size_t len, unsigned seed)
{
    uint8_t *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(i * 131 + seed * 7 + (i >> 9));
    }
    return p;
}

static struct raft_message message_vote(uint32_t from, uint32_t to,
                                        uint64_t term)
{
    struct raft_message m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_VOTE;
    m.from = from;
    m.to = to;
    m.term = term;
    m.index = 10;
    m.log_term = 2;
    return m;
}

struct expect_count {
    struct node *n;
    size_t count;
};

static bool received_at_least(void *ctx)
{
    struct expect_count *e = ctx;
    return e->n->recv_count >= e->count;
}

static void wait_received(uv_loop_t *loop, struct node *n, size_t count)
{
    struct expect_count e = {n, count};
    assert_true(run_until(loop, received_at_least, &e, TIMEOUT_MS));
}

/* ------------------------------------------------------------------------
 * Tests
 * --------------------------------------------------------------------- */

static void gossip_spreads_members_from_one_contact_point(void **state)
{
    struct cluster c;

    (void)state;
    cluster_up(&c, 3, 0);
    for (size_t i = 0; i < 3; i++) {
        const struct transport_member *ms;
        size_t count;
        struct node *n = &c.nodes[i];
        assert_int_equal(transport_members(n->t, &ms, &count), 0);
        assert_int_equal(count, 3);
        assert_true(ms[0].self);
        assert_int_equal(ms[0].node_id, n->id);
        assert_int_equal(ms[0].port, n->port);
        for (size_t k = 1; k < count; k++) {
            uint32_t id = ms[k].node_id;
            char host[32];
            assert_true(id >= 1 && id <= 3 && id != n->id);
            assert_false(ms[k].self);
            assert_string_equal(ms[k].host, "127.0.0.1");
            assert_int_equal(ms[k].port, c.nodes[id - 1].port);
            snprintf(host, sizeof(host), "10.0.0.%u", (unsigned)id);
            assert_string_equal(ms[k].command_host, host);
            assert_int_equal(ms[k].command_port, 26500 + id);
            assert_string_equal(ms[k].version, "0.1.0-test");
            assert_true(ms[k].heartbeat >= 1);
        }
        assert_true(n->member_events >= 2);
        assert_true(n->peer_up >= 2);
    }
    /* Heartbeats keep growing while everybody stays alive. */
    {
        const struct transport_member *ms;
        size_t count;
        uint64_t before;
        assert_int_equal(transport_members(c.nodes[0].t, &ms, &count), 0);
        before = ms[1].heartbeat;
        run_for(&c.loop, 200);
        assert_int_equal(transport_members(c.nodes[0].t, &ms, &count), 0);
        assert_true(ms[1].heartbeat > before);
        assert_true(ms[1].alive && ms[2].alive);
    }
    cluster_down(&c);
}

static void raft_messages_arrive_at_the_right_node_intact(void **state)
{
    struct cluster c;
    struct raft_entry entries[3];
    uint8_t *small = payload_new(100, 1);
    uint8_t *big = payload_new((size_t)300 << 10, 2);
    uint8_t *chunk = payload_new((size_t)200 << 10, 3);
    struct raft_message m;
    uint64_t append_hash;
    uint64_t chunk_hash;
    size_t bytes;

    (void)state;
    cluster_up(&c, 3, 0);

    memset(entries, 0, sizeof(entries));
    entries[0] = (struct raft_entry){5, 11, RAFT_ENTRY_NOOP, {NULL, 0}};
    entries[1] = (struct raft_entry){5, 12, RAFT_ENTRY_NORMAL, {small, 100}};
    entries[2] =
        (struct raft_entry){5, 13, RAFT_ENTRY_NORMAL, {big, (size_t)300 << 10}};
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND;
    m.from = 1;
    m.to = 2;
    m.term = 5;
    m.index = 10;
    m.log_term = 4;
    m.commit = 9;
    m.entries = entries;
    m.entry_count = 3;
    append_hash = message_hash(&m, &bytes);
    for (uint32_t p = 1; p <= 4; p++) {
        assert_int_equal(transport_send(c.nodes[0].t, 2, p, &m), 0);
    }

    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_SNAPSHOT;
    m.from = 1;
    m.to = 3;
    m.term = 5;
    m.index = 100;
    m.log_term = 5;
    m.snapshot.index = 100;
    m.snapshot.term = 5;
    raft_config_init(&m.snapshot.config);
    assert_int_equal(raft_config_add(&m.snapshot.config, 1, RAFT_VOTER, 1), 0);
    m.snapshot.config_index = 1;
    m.snapshot.config_term = 1;
    m.offset = (uint64_t)200 << 10;
    m.total = (uint64_t)600 << 10;
    m.data.base = chunk;
    m.data.len = (size_t)200 << 10;
    chunk_hash = message_hash(&m, &bytes);
    assert_int_equal(transport_send(c.nodes[0].t, 3, 7, &m), 0);
    /* The payloads may be reused right away: sending encoded them. */
    memset(chunk, 0, (size_t)200 << 10);
    memset(big, 0, (size_t)300 << 10);

    m = message_vote(3, 2, 6);
    assert_int_equal(transport_send(c.nodes[2].t, 2, 9, &m), 0);

    wait_received(&c.loop, &c.nodes[1], 5);
    wait_received(&c.loop, &c.nodes[2], 1);
    run_for(&c.loop, 50);
    assert_int_equal(c.nodes[1].recv_count, 5);
    assert_int_equal(c.nodes[2].recv_count, 1);
    assert_int_equal(c.nodes[0].recv_count, 0);
    {
        bool seen[5] = {false};
        bool vote = false;
        for (size_t i = 0; i < 5; i++) {
            const struct received *r = &c.nodes[1].recv[i];
            if (r->type == RAFT_MSG_VOTE) {
                assert_int_equal(r->from, 3);
                assert_int_equal(r->partition, 9);
                assert_int_equal(r->term, 6);
                assert_int_equal(r->index, 10);
                vote = true;
                continue;
            }
            assert_int_equal(r->type, RAFT_MSG_APPEND);
            assert_int_equal(r->from, 1);
            assert_true(r->partition >= 1 && r->partition <= 4);
            assert_false(seen[r->partition]);
            seen[r->partition] = true;
            assert_int_equal(r->entry_count, 3);
            assert_int_equal(r->payload_bytes, 100 + ((size_t)300 << 10));
            assert_int_equal(r->payload_hash, append_hash);
            assert_int_equal(r->index, 10);
        }
        assert_true(vote);
    }
    {
        const struct received *r = &c.nodes[2].recv[0];
        assert_int_equal(r->type, RAFT_MSG_SNAPSHOT);
        assert_int_equal(r->from, 1);
        assert_int_equal(r->partition, 7);
        assert_int_equal(r->payload_bytes, (size_t)200 << 10);
        assert_int_equal(r->payload_hash, chunk_hash);
        assert_int_equal(r->offset, (uint64_t)200 << 10);
        assert_int_equal(r->total, (uint64_t)600 << 10);
    }
    free(small);
    free(big);
    free(chunk);
    cluster_down(&c);
}

/* Commands between partitions (deployment distribution) reach the named
 * broker's on_command with partition, key and record intact, and acks
 * travel back without a record. */
static void partition_commands_arrive(void **state)
{
    struct cluster c;
    struct codec_command cmd;
    const uint8_t record[5] = {1, 2, 3, 4, 5};

    (void)state;
    cluster_up(&c, 2, 0);
    memset(&cmd, 0, sizeof(cmd));
    cmd.source_partition = 1;
    cmd.target_partition = 2;
    cmd.distribution_key = 42;
    cmd.record = record;
    cmd.record_len = sizeof(record);
    assert_int_equal(transport_send_command(c.nodes[0].t, 2, 2, &cmd), 0);
    for (int i = 0; i < 500 && c.nodes[1].commands == 0; i++) {
        run_for(&c.loop, 10);
    }
    assert_int_equal(c.nodes[1].commands, 1);
    assert_int_equal(c.nodes[1].command_from, 1);
    assert_int_equal(c.nodes[1].command_partition, 2);
    assert_int_equal(c.nodes[1].command_key, 42);
    assert_false(c.nodes[1].command_ack);
    assert_int_equal(c.nodes[1].command_record_len, sizeof(record));
    assert_memory_equal(c.nodes[1].command_record, record, sizeof(record));
    cmd.record = NULL;
    cmd.record_len = 0;
    cmd.ack = true;
    assert_int_equal(transport_send_command(c.nodes[1].t, 1, 1, &cmd), 0);
    for (int i = 0; i < 500 && c.nodes[0].commands == 0; i++) {
        run_for(&c.loop, 10);
    }
    assert_int_equal(c.nodes[0].commands, 1);
    assert_true(c.nodes[0].command_ack);
    assert_int_equal(c.nodes[0].command_partition, 1);
    /* A Rebalance request reaches the peer's on_rebalance. */
    assert_int_equal(transport_send_rebalance(c.nodes[0].t, 2), 0);
    for (int i = 0; i < 500 && c.nodes[1].rebalances == 0; i++) {
        run_for(&c.loop, 10);
    }
    assert_int_equal(c.nodes[1].rebalances, 1);
    assert_int_equal(c.nodes[1].rebalance_from, 1);
    assert_int_equal(transport_send_rebalance(c.nodes[0].t, 1),
                     TRANSPORT_E_INVALID);
    /* A forwarded management request reaches the peer's on_forward with
     * its id, direction and payload; id 0 is refused locally. */
    {
        struct codec_forward fw = {.id = 7, .reply = true,
                                   .payload = "{\"status\":202}",
                                   .payload_len = 14};
        assert_int_equal(transport_send_forward(c.nodes[0].t, 2, &fw), 0);
        for (int i = 0; i < 500 && c.nodes[1].forwards == 0; i++) {
            run_for(&c.loop, 10);
        }
        assert_int_equal(c.nodes[1].forwards, 1);
        assert_int_equal(c.nodes[1].forward_id, 7);
        assert_true(c.nodes[1].forward_reply);
        assert_string_equal(c.nodes[1].forward_payload, "{\"status\":202}");
        fw.id = 0;
        assert_int_equal(transport_send_forward(c.nodes[0].t, 2, &fw),
                         TRANSPORT_E_INVALID);
    }
    /* Refused locally: neither record nor ack; to ourselves. */
    cmd.ack = false;
    assert_int_equal(transport_send_command(c.nodes[1].t, 1, 1, &cmd),
                     TRANSPORT_E_INVALID);
    cmd.ack = true;
    assert_int_equal(transport_send_command(c.nodes[1].t, 2, 1, &cmd),
                     TRANSPORT_E_INVALID);
    cluster_down(&c);
}

static void flush_makes_one_write_per_peer(void **state)
{
    struct cluster c;
    const struct transport_stats *st;
    uint64_t writes;
    uint64_t frames;
    struct raft_message m;
    uint64_t next_index[4] = {0};

    (void)state;
    cluster_up(&c, 3, 0);
    st = transport__stats_get(c.nodes[0].t);
    assert_true(run_until(&c.loop, writes_idle, c.nodes[0].t, TIMEOUT_MS));
    writes = st->batch_write_count;
    frames = st->frame_sent_count;
    for (uint64_t i = 0; i < 60; i++) {
        uint32_t to = (uint32_t)(2 + i % 2);
        m = message_vote(1, to, 100 + i);
        assert_int_equal(
            transport_send(c.nodes[0].t, to, (uint32_t)(i % 3), &m), 0);
    }
    transport_flush(c.nodes[0].t);
    assert_int_equal(st->batch_write_count - writes, 2);
    assert_true(st->frame_sent_count - frames >= 60);
    /* A second flush right away has nothing to write. */
    transport_flush(c.nodes[0].t);
    assert_int_equal(st->batch_write_count - writes, 2);

    wait_received(&c.loop, &c.nodes[1], 30);
    wait_received(&c.loop, &c.nodes[2], 30);
    /* One connection per pair keeps each partition's order. */
    for (size_t k = 1; k < 3; k++) {
        memset(next_index, 0, sizeof(next_index));
        for (size_t i = 0; i < c.nodes[k].recv_count; i++) {
            const struct received *r = &c.nodes[k].recv[i];
            assert_true(r->partition < 3);
            assert_true(r->term > next_index[r->partition]);
            next_index[r->partition] = r->term;
        }
    }
    cluster_down(&c);
}

static void simultaneous_dials_keep_the_lower_dialler(void **state)
{
    struct cluster c;
    uint16_t p1;
    uint16_t p2;
    char a1[32];
    char a2[32];
    const char *to1[1] = {a1};
    const char *to2[1] = {a2};
    uint64_t dialled;
    struct raft_message m;

    (void)state;
    memset(&c, 0, sizeof(c));
    assert_int_equal(uv_loop_init(&c.loop), 0);
    c.count = 2;
    p1 = port_reserve(&c.loop);
    p2 = port_reserve(&c.loop);
    snprintf(a1, sizeof(a1), "127.0.0.1:%u", (unsigned)p1);
    snprintf(a2, sizeof(a2), "127.0.0.1:%u", (unsigned)p2);
    /* Both start (and dial) before the loop runs: two connections. */
    node_start(&c.nodes[0], &c.loop, 1, p1, to2, 1, 0);
    node_start(&c.nodes[1], &c.loop, 2, p2, to1, 1, 0);
    assert_int_equal(transport__stats_get(c.nodes[0].t)->conn_dialled_count, 1);
    assert_int_equal(transport__stats_get(c.nodes[1].t)->conn_dialled_count, 1);
    assert_true(run_until(&c.loop, cluster_settled, &c, TIMEOUT_MS));
    run_for(&c.loop, 100);
    assert_int_equal(transport__conns_count(c.nodes[0].t, 2), 1);
    assert_int_equal(transport__conns_count(c.nodes[1].t, 1), 1);
    assert_int_equal(transport__conn_outbound(c.nodes[0].t, 2), 1);
    assert_int_equal(transport__conn_outbound(c.nodes[1].t, 1), 0);
    assert_true(
        transport__stats_get(c.nodes[0].t)->duplicate_closed_count +
            transport__stats_get(c.nodes[1].t)->duplicate_closed_count >=
        1);
    /* Stable: nobody keeps redialling. */
    dialled = transport__stats_get(c.nodes[0].t)->conn_dialled_count +
              transport__stats_get(c.nodes[1].t)->conn_dialled_count;
    run_for(&c.loop, 300);
    assert_int_equal(transport__stats_get(c.nodes[0].t)->conn_dialled_count +
                         transport__stats_get(c.nodes[1].t)->conn_dialled_count,
                     dialled);
    m = message_vote(1, 2, 3);
    assert_int_equal(transport_send(c.nodes[0].t, 2, 1, &m), 0);
    m = message_vote(2, 1, 4);
    assert_int_equal(transport_send(c.nodes[1].t, 1, 1, &m), 0);
    wait_received(&c.loop, &c.nodes[0], 1);
    wait_received(&c.loop, &c.nodes[1], 1);
    assert_int_equal(c.nodes[0].recv[0].term, 4);
    assert_int_equal(c.nodes[1].recv[0].term, 3);
    cluster_down(&c);
}

struct peer_state {
    struct node *n;
    uint32_t node_id;
    bool connected;
};

static bool peer_is(void *ctx)
{
    struct peer_state *p = ctx;
    const struct transport_member *ms;
    size_t count;
    assert_int_equal(transport_members(p->n->t, &ms, &count), 0);
    for (size_t i = 1; i < count; i++) {
        if (ms[i].node_id == p->node_id) {
            return ms[i].connected == p->connected;
        }
    }
    return false;
}

static bool node_closed(void *ctx)
{
    return ((struct node *)ctx)->closed;
}

struct has_term {
    struct node *n;
    uint64_t term;
};

static bool has_term(void *ctx)
{
    struct has_term *h = ctx;
    for (size_t i = 0; i < h->n->recv_count; i++) {
        if (h->n->recv[i].term == h->term) {
            return true;
        }
    }
    return false;
}

static void restarted_broker_is_reconnected(void **state)
{
    struct cluster c;
    struct peer_state ps;
    char contact[32];
    const char *contacts[1] = {contact};
    uint16_t port2;
    struct raft_message m;
    struct has_term ht;

    (void)state;
    cluster_up(&c, 3, 0);
    port2 = (uint16_t)c.nodes[1].port;
    node_close(&c.nodes[1]);
    assert_true(run_until(&c.loop, node_closed, &c.nodes[1], TIMEOUT_MS));
    ps = (struct peer_state){&c.nodes[0], 2, false};
    assert_true(run_until(&c.loop, peer_is, &ps, TIMEOUT_MS));
    ps = (struct peer_state){&c.nodes[2], 2, false};
    assert_true(run_until(&c.loop, peer_is, &ps, TIMEOUT_MS));
    assert_true(c.nodes[0].peer_down >= 1);
    /* While it is down, sends are queued (it has an address). */
    m = message_vote(1, 2, 77);
    assert_int_equal(transport_send(c.nodes[0].t, 2, 1, &m), 0);
    /* Let the others back off a little. */
    run_for(&c.loop, 250);

    snprintf(contact, sizeof(contact), "127.0.0.1:%d", c.nodes[0].port);
    node_start(&c.nodes[1], &c.loop, 2, port2, contacts, 1, 0);
    assert_true(run_until(&c.loop, cluster_settled, &c, TIMEOUT_MS));
    m = message_vote(1, 2, 78);
    assert_int_equal(transport_send(c.nodes[0].t, 2, 1, &m), 0);
    m = message_vote(3, 2, 79);
    assert_int_equal(transport_send(c.nodes[2].t, 2, 2, &m), 0);
    m = message_vote(2, 3, 80);
    assert_int_equal(transport_send(c.nodes[1].t, 3, 3, &m), 0);
    ht = (struct has_term){&c.nodes[1], 78};
    assert_true(run_until(&c.loop, has_term, &ht, TIMEOUT_MS));
    ht = (struct has_term){&c.nodes[1], 79};
    assert_true(run_until(&c.loop, has_term, &ht, TIMEOUT_MS));
    wait_received(&c.loop, &c.nodes[2], 1);
    assert_int_equal(c.nodes[2].recv[c.nodes[2].recv_count - 1].term, 80);
    assert_int_equal(c.nodes[2].recv[c.nodes[2].recv_count - 1].from, 2);
    cluster_down(&c);
}

static void full_peer_queue_refuses_with_busy(void **state)
{
    struct cluster c;
    struct raft_entry e;
    uint8_t *payload = payload_new(1000, 9);
    uint8_t *huge = payload_new(CODEC_FRAME_BYTES_DEFAULT + 1, 9);
    struct raft_message m;
    size_t accepted = 0;
    int rv = 0;

    (void)state;
    cluster_up(&c, 2, 8192);
    assert_true(run_until(&c.loop, writes_idle, c.nodes[0].t, TIMEOUT_MS));
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APPEND;
    m.from = 1;
    m.to = 2;
    m.term = 1;
    m.entries = &e;
    m.entry_count = 1;
    e = (struct raft_entry){1, 1, RAFT_ENTRY_NORMAL, {payload, 1000}};
    while (accepted < 100) {
        rv = transport_send(c.nodes[0].t, 2, 1, &m);
        if (rv != 0) {
            break;
        }
        accepted++;
    }
    assert_int_equal(rv, TRANSPORT_E_BUSY);
    assert_true(accepted >= 7 && accepted <= 9);
    assert_true(transport__queue_bytes(c.nodes[0].t, 2) >= 8192);
    assert_true(transport__queue_bytes(c.nodes[0].t, 2) < 8192 + 1100);
    /* Too big for a frame, whatever the queue. */
    e.buf.base = huge;
    e.buf.len = CODEC_FRAME_BYTES_DEFAULT + 1;
    assert_int_equal(transport_send(c.nodes[0].t, 2, 1, &m), TRANSPORT_E_BUSY);
    transport_flush(c.nodes[0].t);
    wait_received(&c.loop, &c.nodes[1], accepted);
    assert_true(run_until(&c.loop, writes_idle, c.nodes[0].t, TIMEOUT_MS));
    /* At most a gossip frame queued since. */
    assert_true(transport__queue_bytes(c.nodes[0].t, 2) < 1024);
    assert_int_equal(transport_send(c.nodes[0].t, 2, 1, &m),
                     TRANSPORT_E_TOO_BIG);
    e.buf.base = payload;
    e.buf.len = 1000;
    assert_int_equal(transport_send(c.nodes[0].t, 2, 1, &m), 0);
    wait_received(&c.loop, &c.nodes[1], accepted + 1);
    for (size_t i = 0; i < c.nodes[1].recv_count; i++) {
        assert_int_equal(c.nodes[1].recv[i].payload_bytes, 1000);
    }
    free(payload);
    free(huge);
    cluster_down(&c);
}

/* A raw TCP client that sends fixed bytes and waits to be hung up on. */
struct raw {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uint8_t bytes[1024];
    size_t len;
    char buf[4096];
    bool hung_up;
    bool closed;
};

static void raw_close_cb(uv_handle_t *h)
{
    ((struct raw *)h->data)->closed = true;
}

static void raw_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct raw *r = h->data;
    (void)size;
    *buf = uv_buf_init(r->buf, sizeof(r->buf));
}

static void raw_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct raw *r = s->data;
    (void)buf;
    if (nread < 0) {
        r->hung_up = true;
        uv_close((uv_handle_t *)&r->tcp, raw_close_cb);
    }
}

static void raw_write_cb(uv_write_t *req, int status)
{
    (void)req;
    (void)status; /* the peer may hang up first */
}

static void raw_connect_cb(uv_connect_t *req, int status)
{
    struct raw *r = req->data;
    uv_buf_t b = uv_buf_init((char *)r->bytes, (unsigned)r->len);
    assert_int_equal(status, 0);
    assert_int_equal(
        uv_read_start((uv_stream_t *)&r->tcp, raw_alloc_cb, raw_read_cb), 0);
    assert_int_equal(
        uv_write(&r->write_req, (uv_stream_t *)&r->tcp, &b, 1, raw_write_cb),
        0);
}

static bool raw_done(void *ctx)
{
    return ((struct raw *)ctx)->closed;
}

/* Connects to port, sends the bytes and expects to be disconnected. */
static void raw_expect_hangup(uv_loop_t *loop, int port, const void *bytes,
                              size_t len)
{
    struct raw *r = calloc(1, sizeof(*r));
    struct sockaddr_in sa;

    assert_non_null(r);
    assert_true(len <= sizeof(r->bytes));
    memcpy(r->bytes, bytes, len);
    r->len = len;
    assert_int_equal(uv_tcp_init(loop, &r->tcp), 0);
    r->tcp.data = r;
    r->connect_req.data = r;
    assert_int_equal(uv_ip4_addr("127.0.0.1", port, &sa), 0);
    assert_int_equal(uv_tcp_connect(&r->connect_req, &r->tcp,
                                    (const struct sockaddr *)&sa,
                                    raw_connect_cb),
                     0);
    assert_true(run_until(loop, raw_done, r, TIMEOUT_MS));
    assert_true(r->hung_up);
    free(r);
}

static size_t hello_bytes(uint8_t *out, uint32_t version, uint64_t node_id,
                          const char *cluster)
{
    struct codec_arena arena;
    struct codec_hello h = {version, node_id, cluster};
    struct raft_buf frame;
    size_t len;

    codec_arena_init(&arena, 1u << 16);
    assert_int_equal(codec_hello_encode(&arena, &h, &frame), 0);
    memcpy(out, frame.base, frame.len);
    len = frame.len;
    codec_arena_close(&arena);
    return len;
}

static void hostile_peers_are_hung_up_on(void **state)
{
    struct cluster c;
    const struct transport_stats *st;
    static const uint8_t garbage[] = {0,    0,    0,    6,    0xff,
                                      0xfe, 0xfd, 0xfc, 0xfb, 0xfa};
    static const uint8_t oversized[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};
    static const uint8_t raft_first[] = {0, 0, 0, 2, 0x08, 0x01};
    uint8_t buf[1024];
    size_t len;
    struct raft_message m;
    struct peer_state ps;

    (void)state;
    cluster_up(&c, 2, 0);
    st = transport__stats_get(c.nodes[0].t);

    raw_expect_hangup(&c.loop, c.nodes[0].port, garbage, sizeof(garbage));
    raw_expect_hangup(&c.loop, c.nodes[0].port, oversized, sizeof(oversized));
    raw_expect_hangup(&c.loop, c.nodes[0].port, raft_first, sizeof(raft_first));
    assert_int_equal(st->protocol_error_count, 3);

    len = hello_bytes(buf, PROTO_RAFT_VERSION, 7, "another-cluster");
    raw_expect_hangup(&c.loop, c.nodes[0].port, buf, len);
    assert_true(c.nodes[0].saw_cluster_log);
    len = hello_bytes(buf, PROTO_RAFT_VERSION + 1, 7, CLUSTER);
    raw_expect_hangup(&c.loop, c.nodes[0].port, buf, len);
    assert_true(c.nodes[0].saw_version_log);
    assert_int_equal(st->hello_rejected_count, 2);

    /* A good Hello, then garbage: hung up on after the exchange. */
    len = hello_bytes(buf, PROTO_RAFT_VERSION, 99, CLUSTER);
    memcpy(buf + len, garbage, sizeof(garbage));
    raw_expect_hangup(&c.loop, c.nodes[0].port, buf, len + sizeof(garbage));
    assert_int_equal(st->protocol_error_count, 4);
    /* Pretending to be ourselves is refused too. */
    len = hello_bytes(buf, PROTO_RAFT_VERSION, 1, CLUSTER);
    raw_expect_hangup(&c.loop, c.nodes[0].port, buf, len);

    /* The transport is fine. */
    ps = (struct peer_state){&c.nodes[0], 2, true};
    assert_true(peer_is(&ps));
    assert_int_equal(transport__conns_count(c.nodes[0].t, 2), 1);
    m = message_vote(1, 2, 42);
    assert_int_equal(transport_send(c.nodes[0].t, 2, 5, &m), 0);
    wait_received(&c.loop, &c.nodes[1], 1);
    assert_int_equal(c.nodes[1].recv[0].term, 42);
    assert_int_equal(c.nodes[0].peer_down, 1); /* node 99 only */
    /* Node 99 is known from its Hello but has no address. */
    m = message_vote(1, 99, 1);
    assert_int_equal(transport_send(c.nodes[0].t, 99, 5, &m),
                     TRANSPORT_E_UNKNOWN_PEER);
    cluster_down(&c);
}

static void api_errors(void **state)
{
    uv_loop_t loop;
    struct node n;
    struct transport *t;
    struct transport_options o;
    struct transport_callbacks cb = {on_raft, NULL, NULL, NULL,
                                     NULL, NULL, &n};
    struct raft_message m = message_vote(1, 42, 1);
    const char *bad[] = {"no-port", "h:0", "h:65536", ":1", "h:12x"};

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    transport_options_default(&o, 0);
    assert_int_equal(transport_init(&loop, &t, &o, &cb), TRANSPORT_E_INVALID);
    transport_options_default(&o, 1);
    o.advertised_host = "0.0.0.0";
    assert_int_equal(transport_init(&loop, &t, &o, &cb), TRANSPORT_E_INVALID);
    transport_options_default(&o, 1);
    assert_int_equal(transport_init(&loop, &t, &o, &cb), TRANSPORT_E_INVALID);
    o.listen_host = "127.0.0.1";
    o.reconnect_ms_min = 100;
    o.reconnect_ms_max = 10;
    assert_int_equal(transport_init(&loop, &t, &o, &cb), TRANSPORT_E_INVALID);
    cb.on_raft = NULL;
    o.reconnect_ms_max = 0;
    assert_int_equal(transport_init(&loop, &t, &o, &cb), TRANSPORT_E_INVALID);
    cb.on_raft = on_raft;

    /* Not started: STATE; bad contact points: INVALID. */
    memset(&n, 0, sizeof(n));
    n.id = 1;
    o.log = test_log;
    o.log_data = &n;
    assert_int_equal(transport_init(&loop, &t, &o, &cb), 0);
    assert_int_equal(transport_send(t, 42, 1, &m), TRANSPORT_E_STATE);
    assert_int_equal(transport_bound_port(t), TRANSPORT_E_STATE);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(transport_start(t, &bad[i], 1), TRANSPORT_E_INVALID);
    }
    transport_close(t, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);

    /* Started alone: unknown peers, ourselves, invalid messages. */
    node_start(&n, &loop, 1, 0, NULL, 0, 0);
    assert_int_equal(transport_start(n.t, NULL, 0), TRANSPORT_E_STATE);
    assert_int_equal(transport_send(n.t, 42, 1, &m), TRANSPORT_E_UNKNOWN_PEER);
    assert_int_equal(transport_send(n.t, 1, 1, &m), TRANSPORT_E_INVALID);
    transport_flush(n.t);
    {
        const struct transport_member *ms;
        size_t count;
        assert_int_equal(transport_members(n.t, &ms, &count), 0);
        assert_int_equal(count, 1);
        assert_true(ms[0].self);
    }
    run_for(&loop, 60);
    node_close(&n);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_true(n.closed);
    /* Listening on a port in use fails cleanly. */
    {
        struct node a;
        struct node b;
        node_start(&a, &loop, 1, 0, NULL, 0, 0);
        memset(&b, 0, sizeof(b));
        transport_options_default(&o, 2);
        o.listen_host = "127.0.0.1";
        o.listen_port = (uint16_t)a.port;
        o.log = test_log;
        o.log_data = &b;
        cb.data = &b;
        assert_int_equal(transport_init(&loop, &b.t, &o, &cb), 0);
        assert_int_equal(transport_start(b.t, NULL, 0), TRANSPORT_E_IO);
        node_close(&a);
        node_close(&b);
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_true(a.closed && b.closed);
    }
    assert_string_equal(transport_strerror(TRANSPORT_E_BUSY),
                        "peer queue full, message dropped");
    assert_string_equal(transport_strerror(0), "success");
    assert_string_equal(transport_strerror(-1000), "unknown transport error");
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gossip_spreads_members_from_one_contact_point),
        cmocka_unit_test(raft_messages_arrive_at_the_right_node_intact),
        cmocka_unit_test(partition_commands_arrive),
        cmocka_unit_test(flush_makes_one_write_per_peer),
        cmocka_unit_test(simultaneous_dials_keep_the_lower_dialler),
        cmocka_unit_test(restarted_broker_is_reconnected),
        cmocka_unit_test(full_peer_queue_refuses_with_busy),
        cmocka_unit_test(hostile_peers_are_hung_up_on),
        cmocka_unit_test(api_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
