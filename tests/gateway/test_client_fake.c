/* test_client_fake.c: fake broker command servers (test_client_fake.h).
 *
 * Each accepted connection reads frames with proto/frame.h's splitter,
 * unpacks Requests and writes Response frames built from the fake's
 * fields at the time the request arrives. */
#define _POSIX_C_SOURCE 200809L
#include "tests/gateway/test_client_fake.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fake_conn {
    struct fake_broker *f;
    uv_tcp_t tcp;
    uint32_t slot;
    bool closing;
    struct proto_frame_splitter splitter;
    char buf[65536];
};

struct fake_write {
    uv_write_t req;
    uint8_t *frame;
};

static void fake_handle_closed(uv_handle_t *h)
{
    struct fake_broker *f = h->data;
    assert(f->handles_open > 0);
    f->handles_open--;
}

static void fake_conn_closed(uv_handle_t *h)
{
    struct fake_conn *conn = h->data;
    struct fake_broker *f = conn->f;

    proto_frame_splitter_close(&conn->splitter);
    free(conn);
    assert(f->handles_open > 0);
    f->handles_open--;
}

static void fake_conn_close(struct fake_conn *conn)
{
    if (conn->closing) {
        return;
    }
    conn->closing = true;
    conn->f->conns[conn->slot] = NULL;
    uv_close((uv_handle_t *)&conn->tcp, fake_conn_closed);
}

static void fake_write_cb(uv_write_t *req, int status)
{
    struct fake_write *w = (struct fake_write *)req;
    (void)status;
    free(w->frame);
    free(w);
}

static void fake_send(struct fake_conn *conn, Tandem__Command__Response *resp)
{
    struct fake_write *w = malloc(sizeof(*w));
    size_t len;
    uv_buf_t buf;
    int rv;

    assert(w != NULL);
    rv = proto_command_response_pack(resp, PROTO_COMMAND_FRAME_BYTES_DEFAULT,
                                     &w->frame, &len);
    assert(rv == 0);
    buf = uv_buf_init((char *)w->frame, (unsigned)len);
    rv = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, fake_write_cb);
    if (rv != 0) {
        free(w->frame);
        free(w);
    }
}

static void fake_answer_topology(struct fake_conn *conn, uint64_t id)
{
    struct fake_broker *f = conn->f;
    Tandem__Command__Response resp = TANDEM__COMMAND__RESPONSE__INIT;
    Tandem__Command__BrokerTopology t = TANDEM__COMMAND__BROKER_TOPOLOGY__INIT;
    Tandem__Command__Member members[FAKE_CLUSTER_MAX];
    Tandem__Command__Member *mp[FAKE_CLUSTER_MAX];
    Tandem__Command__PartitionState parts[FAKE_PARTITIONS_MAX];
    Tandem__Command__PartitionState *pp[FAKE_PARTITIONS_MAX];
    uint32_t i;

    t.node_id = f->node_id;
    t.cluster_name = "fake";
    t.cluster_size = f->cluster_size;
    t.partitions_count = f->partitions_count;
    t.replication_factor = f->replication_factor;
    t.config_version = f->config_version;
    t.version = "8.4.0-fake";
    for (i = 0; i < f->cluster_count; i++) {
        Tandem__Command__Member m = TANDEM__COMMAND__MEMBER__INIT;
        m.node_id = f->cluster[i]->node_id;
        m.command_host = "127.0.0.1";
        m.command_port = f->cluster[i]->port;
        m.version = "8.4.0-fake";
        members[i] = m;
        mp[i] = &members[i];
    }
    t.n_members = f->cluster_count;
    t.members = mp;
    for (i = 0; i < f->partition_count; i++) {
        Tandem__Command__PartitionState p =
            TANDEM__COMMAND__PARTITION_STATE__INIT;
        p.partition_id = f->partitions[i].id;
        p.role = f->partitions[i].role;
        p.health = f->partitions[i].health;
        p.term = f->partitions[i].term;
        parts[i] = p;
        pp[i] = &parts[i];
    }
    t.n_partitions = f->partition_count;
    t.partitions = pp;
    resp.id = id;
    resp.body_case = TANDEM__COMMAND__RESPONSE__BODY_TOPOLOGY;
    resp.topology = &t;
    fake_send(conn, &resp);
}

/* Returns false when the connection was closed. */
static bool fake_answer_publish(struct fake_conn *conn,
                                const Tandem__Command__Request *req)
{
    struct fake_broker *f = conn->f;
    Tandem__Command__Response resp = TANDEM__COMMAND__RESPONSE__INIT;
    GatewayProtocol__PublishMessageResponse pm =
        GATEWAY_PROTOCOL__PUBLISH_MESSAGE_RESPONSE__INIT;
    Tandem__Command__Error err = TANDEM__COMMAND__ERROR__INIT;
    enum fake_publish_mode mode = f->publish_mode;

    f->publishes++;
    f->last_partition = req->partition_id;
    f->last_timeout_ms = req->timeout_ms;
    if (f->drop_first > 0) {
        f->drop_first--;
        mode = FAKE_PUBLISH_DROP;
    }
    resp.id = req->id;
    switch (mode) {
    case FAKE_PUBLISH_ANSWER:
        pm.key = (int64_t)((uint64_t)req->partition_id << 51) +
                 (int64_t)f->publishes;
        pm.tenantid = "<default>";
        resp.body_case = TANDEM__COMMAND__RESPONSE__BODY_PUBLISH_MESSAGE;
        resp.publish_message = &pm;
        fake_send(conn, &resp);
        return true;
    case FAKE_PUBLISH_ERROR:
        err.code = f->error_code;
        err.message = "fake error";
        err.leader_hint = f->leader_hint;
        resp.body_case = TANDEM__COMMAND__RESPONSE__BODY_ERROR;
        resp.error = &err;
        fake_send(conn, &resp);
        return true;
    case FAKE_PUBLISH_SILENT:
        return true;
    case FAKE_PUBLISH_DROP:
    default:
        fake_conn_close(conn);
        return false;
    }
}

static void fake_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct fake_conn *conn = h->data;
    (void)size;
    *buf = uv_buf_init(conn->buf, sizeof(conn->buf));
}

static void fake_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct fake_conn *conn = s->data;
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t left;

    if (nread < 0) {
        fake_conn_close(conn);
        return;
    }
    left = (size_t)nread;
    while (left > 0 && !conn->closing) {
        struct proto_frame frame;
        size_t used;
        Tandem__Command__Request *req;
        int rv = proto_frame_splitter_feed(&conn->splitter, p, left, &used,
                                           &frame);
        assert(rv >= 0);
        p += used;
        left -= used;
        if (rv == 0) {
            break;
        }
        rv = proto_command_request_unpack(NULL, frame.base, frame.len, &req,
                                          NULL);
        assert(rv == 0);
        assert(proto_command_request_check(req, NULL) == 0);
        if (req->body_case == TANDEM__COMMAND__REQUEST__BODY_TOPOLOGY) {
            conn->f->topology_requests++;
            if (!conn->f->topology_silent) {
                fake_answer_topology(conn, req->id);
            }
        } else {
            (void)fake_answer_publish(conn, req);
        }
        tandem__command__request__free_unpacked(req, NULL);
    }
}

static void fake_accept(uv_stream_t *server, int status)
{
    struct fake_broker *f = server->data;
    struct fake_conn *conn;
    uint32_t slot;

    assert(status == 0);
    conn = calloc(1, sizeof(*conn));
    assert(conn != NULL);
    conn->f = f;
    uv_tcp_init(f->loop, &conn->tcp);
    conn->tcp.data = conn;
    f->handles_open++;
    proto_frame_splitter_init(&conn->splitter,
                              PROTO_COMMAND_FRAME_BYTES_DEFAULT);
    if (uv_accept(server, (uv_stream_t *)&conn->tcp) != 0) {
        conn->closing = true;
        uv_close((uv_handle_t *)&conn->tcp, fake_conn_closed);
        return;
    }
    for (slot = 0; slot < FAKE_CONNS_MAX && f->conns[slot] != NULL; slot++) {
    }
    if (slot == FAKE_CONNS_MAX) {
        conn->closing = true;
        uv_close((uv_handle_t *)&conn->tcp, fake_conn_closed);
        return;
    }
    conn->slot = slot;
    f->conns[slot] = conn;
    uv_read_start((uv_stream_t *)&conn->tcp, fake_alloc, fake_read);
}

void fake_broker_init(uv_loop_t *loop, struct fake_broker *f,
                      uint32_t node_id)
{
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    int rv;

    memset(f, 0, sizeof(*f));
    f->loop = loop;
    f->node_id = node_id;
    f->cluster_size = 1;
    f->partitions_count = 1;
    f->replication_factor = 1;
    f->config_version = 1;
    f->error_code = TANDEM__COMMAND__CODE__NOT_LEADER;
    uv_tcp_init(loop, &f->listener);
    f->listener.data = f;
    f->handles_open = 1;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    rv = uv_tcp_bind(&f->listener, (const struct sockaddr *)&addr, 0);
    assert(rv == 0);
    rv = uv_listen((uv_stream_t *)&f->listener, 16, fake_accept);
    assert(rv == 0);
    uv_tcp_getsockname(&f->listener, (struct sockaddr *)&bound, &len);
    f->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    f->listening = true;
    (void)rv;
}

void fake_broker_partition(struct fake_broker *f, uint32_t id,
                           Tandem__Command__Role role, uint64_t term)
{
    uint32_t i;

    for (i = 0; i < f->partition_count; i++) {
        if (f->partitions[i].id == id) {
            break;
        }
    }
    assert(i < FAKE_PARTITIONS_MAX);
    if (i == f->partition_count) {
        f->partition_count++;
    }
    f->partitions[i].id = id;
    f->partitions[i].role = role;
    f->partitions[i].health = TANDEM__COMMAND__HEALTH__HEALTHY;
    f->partitions[i].term = term;
}

void fake_broker_drop(struct fake_broker *f)
{
    uint32_t i;
    for (i = 0; i < FAKE_CONNS_MAX; i++) {
        if (f->conns[i] != NULL) {
            fake_conn_close(f->conns[i]);
        }
    }
}

void fake_broker_close(struct fake_broker *f)
{
    fake_broker_drop(f);
    if (f->listening) {
        f->listening = false;
        uv_close((uv_handle_t *)&f->listener, fake_handle_closed);
    }
}

void fake_broker_address(const struct fake_broker *f, char *buf)
{
    snprintf(buf, 32, "127.0.0.1:%u", (unsigned)f->port);
}

static void run_tick(uv_timer_t *t)
{
    (void)t;
}

bool run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg,
               uint64_t timeout_ms)
{
    uv_timer_t tick;
    uint64_t end;
    bool ok;

    uv_update_time(loop);
    end = uv_now(loop) + timeout_ms;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, run_tick, 5, 5);
    while (!(ok = pred(arg)) && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static bool run_never(void *arg)
{
    (void)arg;
    return false;
}

void run_for(uv_loop_t *loop, uint64_t ms)
{
    (void)run_until(loop, run_never, NULL, ms);
}
