/* test_grpc.c: tests of the gateway's gRPC server (gateway/grpc_*.c).
 *
 * Method: an in-process server on 127.0.0.1 (ephemeral port) with the
 * fake backend (test_grpc_fake_backend.c), driven over real TCP by a raw
 * HTTP/2 client written here with nghttp2's client session on the same
 * libuv loop. Each test sends requests shaped by hand (path, content
 * type, grpc-timeout, prefix, body), runs the loop until the answers are
 * in (bounded by a 5 s guard timer), and checks :status, the response
 * message and the grpc-status/grpc-message trailers. Teardown closes the
 * server and requires uv_loop_close() == 0 (no handle leaked). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "gateway/grpc_server.h"
#include "proto/proto.h"
#include "test_grpc_fake_backend.h"

#define T_GUARD_MS 5000u
#define T_CALLS_MAX 8u
#define T_BODY_MAX (256u * 1024u)
#define T_MESSAGE_MAX (64u * 1024u) /* the server's message_bytes_max */

/* ---- A raw HTTP/2 client ------------------------------------------ */

struct tcall {
    int32_t id;
    int http_status;
    char content_type[64];
    int grpc_status; /* -1 until seen */
    char grpc_message[512];
    int header_blocks;     /* 1: trailers-only */
    uint8_t body[T_BODY_MAX]; /* response DATA */
    size_t body_len;
    bool closed;
    uint32_t close_error;
    const uint8_t *req; /* request DATA, sent by the data provider */
    size_t req_len, req_pos;
};

struct tclient {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    bool connected;
    bool eof;
    bool closed;
    nghttp2_session *session; /* NULL for a raw client */
    struct tcall calls[T_CALLS_MAX];
    unsigned call_count;
    uint8_t rbuf[65536];
};

struct fixture {
    uv_loop_t loop;
    struct grpc_fake_backend fake;
    struct grpc_server srv;
    uint16_t port;
    uv_timer_t guard;
    bool guard_fired;
    bool srv_closed;
    struct tclient client;
};

static struct tcall *tclient_call_of(struct tclient *c, int32_t id)
{
    for (unsigned i = 0; i < c->call_count; i++) {
        if (c->calls[i].id == id) {
            return &c->calls[i];
        }
    }
    return NULL;
}

static int tclient_on_header(nghttp2_session *s, const nghttp2_frame *frame,
                             const uint8_t *name, size_t namelen,
                             const uint8_t *value, size_t valuelen,
                             uint8_t flags, void *user_data)
{
    struct tcall *call = tclient_call_of(user_data, frame->hd.stream_id);
    char v[512];

    (void)s;
    (void)flags;
    if (call == NULL) {
        return 0;
    }
    snprintf(v, sizeof(v), "%.*s", (int)valuelen, (const char *)value);
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        call->http_status = atoi(v);
    } else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
        snprintf(call->content_type, sizeof(call->content_type), "%.63s", v);
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        call->grpc_status = atoi(v);
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        memcpy(call->grpc_message, v, sizeof(call->grpc_message));
    }
    return 0;
}

static int tclient_on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame,
                                 void *user_data)
{
    struct tcall *call = tclient_call_of(user_data, frame->hd.stream_id);

    (void)s;
    if (call != NULL && frame->hd.type == NGHTTP2_HEADERS) {
        call->header_blocks++;
    }
    return 0;
}

static int tclient_on_data(nghttp2_session *s, uint8_t flags, int32_t id,
                           const uint8_t *data, size_t len, void *user_data)
{
    struct tcall *call = tclient_call_of(user_data, id);

    (void)s;
    (void)flags;
    if (call != NULL) {
        assert_true(call->body_len + len <= sizeof(call->body));
        memcpy(call->body + call->body_len, data, len);
        call->body_len += len;
    }
    return 0;
}

static int tclient_on_close(nghttp2_session *s, int32_t id, uint32_t error,
                            void *user_data)
{
    struct tcall *call = tclient_call_of(user_data, id);

    (void)s;
    if (call != NULL) {
        call->closed = true;
        call->close_error = error;
    }
    return 0;
}

static ssize_t tclient_read_req(nghttp2_session *s, int32_t id, uint8_t *buf,
                                size_t length, uint32_t *flags,
                                nghttp2_data_source *source, void *user_data)
{
    struct tcall *call = source->ptr;
    size_t n = call->req_len - call->req_pos;

    (void)s;
    (void)id;
    (void)user_data;
    if (n > length) {
        n = length;
    }
    memcpy(buf, call->req + call->req_pos, n);
    call->req_pos += n;
    if (call->req_pos == call->req_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

static void tclient_write_cb(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void tclient_write(struct tclient *c, const uint8_t *data, size_t len)
{
    uv_write_t *req;
    uv_buf_t buf;

    if (c->closed || len == 0) {
        return;
    }
    req = malloc(sizeof(*req) + len);
    assert_non_null(req);
    memcpy(req + 1, data, len);
    buf = uv_buf_init((char *)(req + 1), (unsigned)len);
    assert_int_equal(uv_write(req, (uv_stream_t *)&c->tcp, &buf, 1,
                              tclient_write_cb),
                     0);
}

static void tclient_flush(struct tclient *c)
{
    const uint8_t *data;
    ssize_t n;

    if (c->session == NULL || c->closed) {
        return;
    }
    while ((n = nghttp2_session_mem_send(c->session, &data)) > 0) {
        tclient_write(c, data, (size_t)n);
    }
    assert_true(n == 0);
}

static void tclient_alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct tclient *c = h->data;
    (void)size;
    *buf = uv_buf_init((char *)c->rbuf, sizeof(c->rbuf));
}

static void tclient_read_cb(uv_stream_t *stream, ssize_t nread,
                            const uv_buf_t *buf)
{
    struct tclient *c = stream->data;

    if (nread < 0) {
        c->eof = true;
        uv_read_stop(stream);
        return;
    }
    if (c->session != NULL && nread > 0) {
        ssize_t n = nghttp2_session_mem_recv(c->session,
                                             (const uint8_t *)buf->base,
                                             (size_t)nread);
        assert_int_equal(n, nread);
        tclient_flush(c);
    }
}

static void tclient_connect_cb(uv_connect_t *req, int status)
{
    struct tclient *c = req->data;

    assert_int_equal(status, 0);
    c->connected = true;
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, tclient_alloc_cb,
                                   tclient_read_cb),
                     0);
    tclient_flush(c);
}

/* Runs the loop until *flag is true (guard timer bounds it). */
static void run_until(struct fixture *f, const bool *flag)
{
    while (!*flag && !f->guard_fired) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_false(f->guard_fired);
}

static void tclient_open(struct fixture *f, struct tclient *c, bool http2)
{
    struct sockaddr_in addr;

    memset(c, 0, sizeof(*c));
    c->loop = &f->loop;
    if (http2) {
        nghttp2_session_callbacks *cbs;
        assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
        nghttp2_session_callbacks_set_on_header_callback(cbs,
                                                         tclient_on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(
            cbs, tclient_on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
            cbs, tclient_on_data);
        nghttp2_session_callbacks_set_on_stream_close_callback(
            cbs, tclient_on_close);
        assert_int_equal(nghttp2_session_client_new(&c->session, cbs, c), 0);
        nghttp2_session_callbacks_del(cbs);
        assert_int_equal(
            nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, NULL, 0),
            0);
    }
    assert_int_equal(uv_tcp_init(&f->loop, &c->tcp), 0);
    c->tcp.data = c;
    c->connect_req.data = c;
    assert_int_equal(uv_ip4_addr("127.0.0.1", f->port, &addr), 0);
    assert_int_equal(uv_tcp_connect(&c->connect_req, &c->tcp,
                                    (const struct sockaddr *)&addr,
                                    tclient_connect_cb),
                     0);
    run_until(f, &c->connected);
}

static void tclient_close_cb(uv_handle_t *h)
{
    struct tclient *c = h->data;
    c->closed = true;
}

static void tclient_close(struct fixture *f, struct tclient *c)
{
    if (c->session != NULL) {
        nghttp2_session_del(c->session);
        c->session = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, tclient_close_cb);
    run_until(f, &c->closed);
}

/* Submits one request; body (borrowed until sent) may be NULL. */
static struct tcall *tclient_request(struct tclient *c, const char *method,
                                     const char *path,
                                     const char *content_type,
                                     const char *timeout, const uint8_t *body,
                                     size_t body_len)
{
    nghttp2_nv nv[8];
    size_t n = 0;
    nghttp2_data_provider provider;
    struct tcall *call;

#define T_NV(k, v)                                                   \
    nv[n++] = (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), strlen(k), \
                           strlen(v), NGHTTP2_NV_FLAG_NONE}
    T_NV(":method", method);
    T_NV(":scheme", "http");
    T_NV(":authority", "127.0.0.1");
    T_NV(":path", path);
    T_NV("te", "trailers");
    if (content_type != NULL) {
        T_NV("content-type", content_type);
    }
    if (timeout != NULL) {
        T_NV("grpc-timeout", timeout);
    }
#undef T_NV
    assert_true(c->call_count < T_CALLS_MAX);
    call = &c->calls[c->call_count++];
    memset(call, 0, sizeof(*call));
    call->grpc_status = -1;
    call->req = body;
    call->req_len = body_len;
    provider.source.ptr = call;
    provider.read_callback = tclient_read_req;
    call->id = nghttp2_submit_request(c->session, NULL, nv, n,
                                      body != NULL ? &provider : NULL, NULL);
    assert_true(call->id > 0);
    tclient_flush(c);
    return call;
}

/* A gRPC call of Gateway/<rpc> with msg (NULL: an empty message). */
static struct tcall *tclient_grpc(struct tclient *c, const char *rpc,
                                  const ProtobufCMessage *msg,
                                  const char *timeout, uint8_t *buf,
                                  size_t cap)
{
    char path[128];
    size_t len = msg != NULL ? protobuf_c_message_get_packed_size(msg) : 0;

    assert_true(5 + len <= cap);
    buf[0] = 0;
    buf[1] = (uint8_t)(len >> 24);
    buf[2] = (uint8_t)(len >> 16);
    buf[3] = (uint8_t)(len >> 8);
    buf[4] = (uint8_t)len;
    if (msg != NULL) {
        protobuf_c_message_pack(msg, buf + 5);
    }
    snprintf(path, sizeof(path), "/gateway_protocol.Gateway/%s", rpc);
    return tclient_request(c, "POST", path, "application/grpc", timeout, buf,
                           5 + len);
}

/* ---- Fixture ---------------------------------------------------------- */

static void guard_cb(uv_timer_t *t)
{
    struct fixture *f = t->data;
    f->guard_fired = true;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct grpc_server_options opts;

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    grpc_fake_backend_init(&f->fake, &f->loop);
    grpc_server_options_default(&opts);
    opts.message_bytes_max = T_MESSAGE_MAX;
    assert_int_equal(
        grpc_server_init(&f->loop, &f->srv, &opts, &f->fake.base), 0);
    assert_int_equal(grpc_server_start(&f->srv, "127.0.0.1", 0), 0);
    f->port = grpc_server_port(&f->srv);
    assert_true(f->port != 0);
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
    uv_timer_start(&f->guard, guard_cb, T_GUARD_MS, 0);
    uv_unref((uv_handle_t *)&f->guard);
    *state = f;
    return 0;
}

static void srv_close_cb(struct grpc_server *srv)
{
    struct fixture *f = srv->data;
    f->srv_closed = true;
}

static void srv_close_flag_cb(struct grpc_server *srv)
{
    *(bool *)srv->data = true;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    f->srv.data = f;
    grpc_server_close(&f->srv, srv_close_cb);
    while (!f->srv_closed) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(f->srv.conn_count, 0);
    grpc_fake_backend_close(&f->fake);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* Unpacks the single response message of call as desc. */
static ProtobufCMessage *call_message(const struct tcall *call,
                                      const ProtobufCMessageDescriptor *desc)
{
    uint32_t len;

    assert_true(call->body_len >= 5);
    assert_int_equal(call->body[0], 0);
    len = (uint32_t)call->body[1] << 24 | (uint32_t)call->body[2] << 16 |
          (uint32_t)call->body[3] << 8 | call->body[4];
    assert_int_equal(call->body_len, 5 + (size_t)len);
    return protobuf_c_message_unpack(desc, NULL, len, call->body + 5);
}

/* ---- Tests ------------------------------------------------------------ */

/* Topology: 200, application/grpc, one message, then grpc-status 0 in
 * trailers (two header blocks). */
static void test_topology_ok(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[16];
    struct tcall *call;
    GatewayProtocol__TopologyResponse *t;

    tclient_open(f, &f->client, true);
    call = tclient_grpc(&f->client, "Topology", NULL, NULL, buf, sizeof(buf));
    run_until(f, &call->closed);
    assert_int_equal(call->http_status, 200);
    assert_string_equal(call->content_type, "application/grpc");
    assert_int_equal(call->grpc_status, 0);
    assert_int_equal(call->header_blocks, 2);
    assert_int_equal(call->close_error, NGHTTP2_NO_ERROR);
    t = (GatewayProtocol__TopologyResponse *)call_message(
        call, &gateway_protocol__topology_response__descriptor);
    assert_non_null(t);
    assert_int_equal(t->clustersize, 3);
    assert_int_equal(t->partitionscount, 3);
    assert_int_equal(t->n_brokers, 3);
    assert_int_equal(t->brokers[0]->n_partitions, 3);
    assert_string_equal(t->gatewayversion, "8.4.0");
    protobuf_c_message_free_unpacked(&t->base, NULL);
    assert_int_equal(f->fake.calls, 1);
    assert_int_equal(f->fake.last_deadline_ms, 0); /* no grpc-timeout */
    assert_string_equal(f->fake.last_rpc, "Topology");
    tclient_close(f, &f->client);
}

/* Two calls on one connection, in parallel; keys come back in order. */
static void test_publish_message_ok(void **state)
{
    struct fixture *f = *state;
    uint8_t buf1[128], buf2[128];
    GatewayProtocol__PublishMessageRequest req =
        GATEWAY_PROTOCOL__PUBLISH_MESSAGE_REQUEST__INIT;
    struct tcall *c1, *c2;
    GatewayProtocol__PublishMessageResponse *r;

    req.name = "order-paid";
    req.correlationkey = "order-42";
    tclient_open(f, &f->client, true);
    c1 = tclient_grpc(&f->client, "PublishMessage", &req.base, "10S", buf1,
                      sizeof(buf1));
    c2 = tclient_grpc(&f->client, "PublishMessage", &req.base, NULL, buf2,
                      sizeof(buf2));
    run_until(f, &c1->closed);
    run_until(f, &c2->closed);
    assert_int_equal(c1->grpc_status, 0);
    assert_int_equal(c2->grpc_status, 0);
    r = (GatewayProtocol__PublishMessageResponse *)call_message(
        c1, &gateway_protocol__publish_message_response__descriptor);
    assert_non_null(r);
    assert_int_equal(r->key, GRPC_FAKE_KEY_FIRST);
    assert_string_equal(r->tenantid, "<default>");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    r = (GatewayProtocol__PublishMessageResponse *)call_message(
        c2, &gateway_protocol__publish_message_response__descriptor);
    assert_non_null(r);
    assert_int_equal(r->key, GRPC_FAKE_KEY_FIRST + 1);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    assert_int_equal(f->srv.calls_started, 2);
    tclient_close(f, &f->client);
}

/* An RPC the backend does not implement: a trailers-only response. */
static void test_unimplemented_rpc(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[16];
    struct tcall *call;

    tclient_open(f, &f->client, true);
    call = tclient_grpc(&f->client, "CreateProcessInstance", NULL, NULL, buf,
                        sizeof(buf));
    run_until(f, &call->closed);
    assert_int_equal(call->http_status, 200);
    assert_int_equal(call->grpc_status, 12);
    assert_int_equal(call->header_blocks, 1);
    assert_int_equal(call->body_len, 0);
    assert_string_equal(call->grpc_message,
                        "CreateProcessInstance is not implemented by the "
                        "fake backend");
    tclient_close(f, &f->client);
}

/* Unknown method, unknown service, bad path: UNIMPLEMENTED, no backend. */
static void test_unknown_method_and_service(void **state)
{
    struct fixture *f = *state;
    uint8_t body[5] = {0, 0, 0, 0, 0};
    struct tcall *a, *b, *c;

    tclient_open(f, &f->client, true);
    a = tclient_request(&f->client, "POST", "/gateway_protocol.Gateway/Nope",
                        "application/grpc", NULL, body, 5);
    b = tclient_request(&f->client, "POST", "/other.Service/Topology",
                        "application/grpc+proto", NULL, body, 5);
    c = tclient_request(&f->client, "POST", "/", "application/grpc", NULL,
                        body, 5);
    run_until(f, &a->closed);
    run_until(f, &b->closed);
    run_until(f, &c->closed);
    assert_int_equal(a->grpc_status, 12);
    assert_string_equal(a->grpc_message,
                        "Method not found: gateway_protocol.Gateway/Nope");
    assert_int_equal(b->grpc_status, 12);
    assert_string_equal(b->grpc_message,
                        "Method not found: other.Service/Topology");
    assert_int_equal(c->grpc_status, 12);
    assert_int_equal(f->fake.calls, 0);
    tclient_close(f, &f->client);
}

/* Not gRPC: 415 for the content type, 405 for the method. */
static void test_http_errors(void **state)
{
    struct fixture *f = *state;
    uint8_t body[5] = {0, 0, 0, 0, 0};
    struct tcall *a, *b;

    tclient_open(f, &f->client, true);
    a = tclient_request(&f->client, "POST", "/gateway_protocol.Gateway/Topology",
                        "application/json", NULL, body, 5);
    b = tclient_request(&f->client, "GET", "/gateway_protocol.Gateway/Topology",
                        "application/grpc", NULL, NULL, 0);
    run_until(f, &a->closed);
    run_until(f, &b->closed);
    assert_int_equal(a->http_status, 415);
    assert_int_equal(b->http_status, 405);
    assert_int_equal(f->fake.calls, 0);
    tclient_close(f, &f->client);
}

/* Bytes that are not a PublishMessageRequest: INVALID_ARGUMENT. */
static void test_malformed_protobuf(void **state)
{
    struct fixture *f = *state;
    /* Field 1 (name), length 16, but only 1 byte follows. */
    uint8_t body[] = {0, 0, 0, 0, 3, 0x0a, 0x10, 'a'};
    struct tcall *call;

    tclient_open(f, &f->client, true);
    call = tclient_request(&f->client, "POST",
                           "/gateway_protocol.Gateway/PublishMessage",
                           "application/grpc", NULL, body, sizeof(body));
    run_until(f, &call->closed);
    assert_int_equal(call->grpc_status, 3);
    assert_string_equal(call->grpc_message,
                        "Invalid protobuf byte sequence: cannot decode "
                        "gateway_protocol.PublishMessageRequest");
    assert_int_equal(f->fake.calls, 0);
    tclient_close(f, &f->client);
}

/* Framing errors: compressed flag, truncated message, no message, two
 * messages. */
static void test_framing_errors(void **state)
{
    struct fixture *f = *state;
    static const uint8_t compressed[] = {1, 0, 0, 0, 0};
    static const uint8_t truncated[] = {0, 0, 0, 0, 4, 1};
    static const uint8_t two[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t reserved[] = {2, 0, 0, 0, 0};
    const char *path = "/gateway_protocol.Gateway/Topology";
    struct tcall *a, *b, *c, *d, *e;

    tclient_open(f, &f->client, true);
    a = tclient_request(&f->client, "POST", path, "application/grpc", NULL,
                        compressed, sizeof(compressed));
    b = tclient_request(&f->client, "POST", path, "application/grpc", NULL,
                        truncated, sizeof(truncated));
    c = tclient_request(&f->client, "POST", path, "application/grpc", NULL,
                        NULL, 0);
    d = tclient_request(&f->client, "POST", path, "application/grpc", NULL,
                        two, sizeof(two));
    e = tclient_request(&f->client, "POST", path, "application/grpc", NULL,
                        reserved, sizeof(reserved));
    run_until(f, &a->closed);
    run_until(f, &b->closed);
    run_until(f, &c->closed);
    run_until(f, &d->closed);
    run_until(f, &e->closed);
    assert_int_equal(a->grpc_status, 13);
    assert_non_null(strstr(a->grpc_message, "compress"));
    assert_int_equal(b->grpc_status, 13);
    assert_string_equal(b->grpc_message,
                        "Encountered end-of-stream mid-frame");
    assert_int_equal(c->grpc_status, 13);
    assert_string_equal(c->grpc_message, "Half-closed without a request");
    assert_int_equal(d->grpc_status, 13);
    assert_string_equal(d->grpc_message, "Too many requests");
    assert_int_equal(e->grpc_status, 13);
    assert_int_equal(f->fake.calls, 0);
    tclient_close(f, &f->client);
}

/* Over message_bytes_max: by the declared length (refused at the
 * prefix), and by the bytes actually sent. */
static void test_oversized_message(void **state)
{
    struct fixture *f = *state;
    static uint8_t big[T_MESSAGE_MAX + 1024];
    uint8_t declared[] = {0, 0, 0x50, 0, 0}; /* 5 MiB */
    const char *path = "/gateway_protocol.Gateway/PublishMessage";
    uint32_t len = sizeof(big) - 5;
    struct tcall *a, *b;

    memset(big, 0, sizeof(big));
    big[1] = (uint8_t)(len >> 24);
    big[2] = (uint8_t)(len >> 16);
    big[3] = (uint8_t)(len >> 8);
    big[4] = (uint8_t)len;
    tclient_open(f, &f->client, true);
    a = tclient_request(&f->client, "POST", path, "application/grpc", NULL,
                        declared, sizeof(declared));
    b = tclient_request(&f->client, "POST", path, "application/grpc", NULL,
                        big, sizeof(big));
    run_until(f, &a->closed);
    run_until(f, &b->closed);
    assert_int_equal(a->grpc_status, 8);
    assert_string_equal(a->grpc_message,
                        "gRPC message exceeds maximum size 65536: 5242880");
    assert_int_equal(b->grpc_status, 8);
    assert_int_equal(f->fake.calls, 0);
    /* The connection is still usable. */
    {
        uint8_t buf[16];
        struct tcall *c = tclient_grpc(&f->client, "Topology", NULL, NULL,
                                       buf, sizeof(buf));
        run_until(f, &c->closed);
        assert_int_equal(c->grpc_status, 0);
    }
    tclient_close(f, &f->client);
}

/* grpc-timeout: passed to the backend as an absolute deadline; the server
 * answers DEADLINE_EXCEEDED itself and cancels the held call; a malformed
 * value is INTERNAL. */
static void test_grpc_timeout(void **state)
{
    struct fixture *f = *state;
    uint8_t buf1[16], buf2[16], buf3[16];
    struct tcall *a, *b, *c;
    uint64_t before = uv_now(&f->loop);

    f->fake.hold = true;
    tclient_open(f, &f->client, true);
    a = tclient_grpc(&f->client, "Topology", NULL, "100m", buf1, sizeof(buf1));
    run_until(f, &a->closed);
    assert_int_equal(a->grpc_status, 4);
    assert_int_equal(a->header_blocks, 1);
    assert_int_equal(f->fake.calls, 1);
    assert_int_equal(f->fake.cancels, 1);
    assert_int_equal(f->fake.pending_count, 0);
    assert_true(f->fake.last_deadline_ms >= before + 100);
    assert_true(f->fake.last_deadline_ms <= uv_now(&f->loop));
    assert_int_equal(f->srv.calls_expired, 1);

    b = tclient_grpc(&f->client, "Topology", NULL, "1x", buf2, sizeof(buf2));
    c = tclient_grpc(&f->client, "Topology", NULL, "123456789S", buf3,
                     sizeof(buf3));
    run_until(f, &b->closed);
    run_until(f, &c->closed);
    assert_int_equal(b->grpc_status, 13);
    assert_string_equal(b->grpc_message, "Invalid grpc-timeout header");
    assert_int_equal(c->grpc_status, 13);
    assert_int_equal(f->fake.calls, 1);
    tclient_close(f, &f->client);
}

/* A late backend answer within the deadline is delivered. */
static void test_delayed_answer(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[16];
    struct tcall *a;

    f->fake.delay_ms = 30;
    tclient_open(f, &f->client, true);
    a = tclient_grpc(&f->client, "Topology", NULL, "2S", buf, sizeof(buf));
    run_until(f, &a->closed);
    assert_int_equal(a->grpc_status, 0);
    assert_int_equal(f->fake.cancels, 0);
    assert_int_equal(f->fake.answers, 1);
    tclient_close(f, &f->client);
}

/* A failing backend: its status and message (percent-encoded). */
static void test_backend_failure(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[16];
    struct tcall *a;

    f->fake.fail_status = 14;
    f->fake.fail_message = "no leader for partition 1: 100% \xc3\xbc\n";
    tclient_open(f, &f->client, true);
    a = tclient_grpc(&f->client, "Topology", NULL, NULL, buf, sizeof(buf));
    run_until(f, &a->closed);
    assert_int_equal(a->grpc_status, 14);
    assert_string_equal(a->grpc_message,
                        "no leader for partition 1: 100%25 %C3%BC%0A");
    tclient_close(f, &f->client);
}

/* RST_STREAM from the client cancels the backend call. */
static void test_rst_stream_cancels(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[16];
    struct tcall *a;
    bool cancelled = false;

    f->fake.hold = true;
    tclient_open(f, &f->client, true);
    a = tclient_grpc(&f->client, "Topology", NULL, NULL, buf, sizeof(buf));
    while (f->fake.calls == 0 && !f->guard_fired) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(f->fake.pending_count, 1);
    assert_int_equal(nghttp2_submit_rst_stream(f->client.session,
                                               NGHTTP2_FLAG_NONE, a->id,
                                               NGHTTP2_CANCEL),
                     0);
    tclient_flush(&f->client);
    cancelled = f->fake.cancels == 1;
    while (!cancelled && !f->guard_fired) {
        uv_run(&f->loop, UV_RUN_ONCE);
        cancelled = f->fake.cancels == 1;
    }
    assert_true(cancelled);
    assert_int_equal(f->fake.pending_count, 0);
    assert_int_equal(f->srv.calls_cancelled, 1);
    tclient_close(f, &f->client);
}

/* Losing the connection cancels every call on it. */
static void test_connection_loss_cancels(void **state)
{
    struct fixture *f = *state;
    uint8_t buf1[16], buf2[16];
    bool gone = false;

    f->fake.hold = true;
    tclient_open(f, &f->client, true);
    (void)tclient_grpc(&f->client, "Topology", NULL, NULL, buf1, sizeof(buf1));
    (void)tclient_grpc(&f->client, "PublishMessage", NULL, "1H", buf2,
                       sizeof(buf2));
    while (f->fake.calls < 2 && !f->guard_fired) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(f->fake.pending_count, 2);
    tclient_close(f, &f->client);
    gone = f->srv.conn_count == 0;
    while (!gone && !f->guard_fired) {
        uv_run(&f->loop, UV_RUN_ONCE);
        gone = f->srv.conn_count == 0;
    }
    assert_true(gone);
    assert_int_equal(f->fake.cancels, 2);
    assert_int_equal(f->fake.pending_count, 0);
}

/* Garbage instead of the HTTP/2 preface: the connection is closed, and
 * the server still serves the next client. */
static void test_garbage_preface(void **state)
{
    struct fixture *f = *state;
    struct tclient raw;
    static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    uint8_t buf[16];
    struct tcall *call;

    tclient_open(f, &raw, false);
    tclient_write(&raw, (const uint8_t *)junk, sizeof(junk) - 1);
    run_until(f, &raw.eof);
    tclient_close(f, &raw);

    tclient_open(f, &f->client, true);
    call = tclient_grpc(&f->client, "Topology", NULL, NULL, buf, sizeof(buf));
    run_until(f, &call->closed);
    assert_int_equal(call->grpc_status, 0);
    tclient_close(f, &f->client);
}

/* Server streaming (ActivateJobs): one message, then OK in trailers. */
static void test_activate_jobs_stream(void **state)
{
    struct fixture *f = *state;
    uint8_t buf1[64], buf2[64];
    GatewayProtocol__ActivateJobsRequest req =
        GATEWAY_PROTOCOL__ACTIVATE_JOBS_REQUEST__INIT;
    struct tcall *a, *b;
    GatewayProtocol__ActivateJobsResponse *r;

    req.type = "fake";
    req.maxjobstoactivate = 1;
    tclient_open(f, &f->client, true);
    a = tclient_grpc(&f->client, "ActivateJobs", &req.base, NULL, buf1,
                     sizeof(buf1));
    run_until(f, &a->closed);
    assert_int_equal(a->grpc_status, 12); /* the fake's default */
    f->fake.activate_jobs = true;
    b = tclient_grpc(&f->client, "ActivateJobs", &req.base, NULL, buf2,
                     sizeof(buf2));
    run_until(f, &b->closed);
    assert_int_equal(b->grpc_status, 0);
    r = (GatewayProtocol__ActivateJobsResponse *)call_message(
        b, &gateway_protocol__activate_jobs_response__descriptor);
    assert_non_null(r);
    assert_int_equal(r->n_jobs, 1);
    assert_string_equal(r->jobs[0]->type, "fake");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    tclient_close(f, &f->client);
}

/* Over connections_max, a new connection is accepted and closed at once;
 * the existing one keeps working. */
static void test_connections_max(void **state)
{
    struct fixture *f = *state;
    struct tclient extra;
    uint8_t buf[16];
    struct tcall *call;

    f->srv.opts.connections_max = 1;
    tclient_open(f, &f->client, true);
    tclient_open(f, &extra, true);
    run_until(f, &extra.eof);
    assert_int_equal(f->srv.conns_rejected, 1);
    tclient_close(f, &extra);
    call = tclient_grpc(&f->client, "Topology", NULL, NULL, buf, sizeof(buf));
    run_until(f, &call->closed);
    assert_int_equal(call->grpc_status, 0);
    assert_int_equal(f->srv.conn_count, 1);
    tclient_close(f, &f->client);
}

/* A tiny output bound: the server writes a little at a time and stops
 * reading meanwhile, and every call still completes. */
static void test_output_bound(void **state)
{
    struct fixture *f = *state;
    uint8_t bufs[4][16];
    struct tcall *calls[4];

    f->srv.opts.output_bytes_max = 16;
    tclient_open(f, &f->client, true);
    for (int i = 0; i < 4; i++) {
        calls[i] = tclient_grpc(&f->client, "Topology", NULL, NULL, bufs[i],
                                sizeof(bufs[i]));
    }
    for (int i = 0; i < 4; i++) {
        run_until(f, &calls[i]->closed);
        assert_int_equal(calls[i]->grpc_status, 0);
        assert_true(calls[i]->body_len > 100);
    }
    tclient_close(f, &f->client);
}

/* Bad options are refused with a message; a never-started server closes
 * at once. */
static void test_options(void **state)
{
    uv_loop_t loop;
    struct grpc_fake_backend fake;
    struct grpc_server srv;
    struct grpc_server_options opts;
    bool closed = false;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    grpc_fake_backend_init(&fake, &loop);
    grpc_server_options_default(&opts);
    opts.streams_max = 0;
    assert_int_equal(grpc_server_init(&loop, &srv, &opts, &fake.base),
                     GRPC_E_INVALID);
    assert_non_null(strstr(srv.errmsg, "bad options"));
    grpc_server_options_default(&opts);
    opts.request_bytes_max = opts.message_bytes_max - 1;
    assert_int_equal(grpc_server_init(&loop, &srv, &opts, &fake.base),
                     GRPC_E_INVALID);
    assert_int_equal(grpc_server_init(&loop, &srv, NULL, &fake.base), 0);
    assert_int_equal(grpc_server_port(&srv), 0);
    assert_int_equal(grpc_server_start(&srv, "not-an-ip", 0), GRPC_E_INVALID);
    srv.data = &closed;
    grpc_server_close(&srv, srv_close_flag_cb);
    assert_true(closed);
    grpc_fake_backend_close(&fake);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The method table: 21 RPCs, lookups by path. */
static void test_method_table(void **state)
{
    enum grpc_lookup why;
    const struct grpc_method *m;
    static const char p1[] = "/gateway_protocol.Gateway/ActivateJobs";
    static const char p2[] = "/gateway_protocol.Gateway/Topology";
    static const char p3[] = "/gateway_protocol.Gateway/";
    static const char p4[] = "/gateway_protocol.Gatewayx/Topology";

    (void)state;
    assert_int_equal(grpc_service_method_count(), 21);
    m = grpc_service_method_find(p1, sizeof(p1) - 1, &why);
    assert_non_null(m);
    assert_true(m->server_streaming);
    assert_int_equal(why, GRPC_LOOKUP_FOUND);
    m = grpc_service_method_find(p2, sizeof(p2) - 1, &why);
    assert_non_null(m);
    assert_false(m->server_streaming);
    assert_ptr_equal(m->output, &gateway_protocol__topology_response__descriptor);
    assert_null(grpc_service_method_find(p3, sizeof(p3) - 1, &why));
    assert_int_equal(why, GRPC_LOOKUP_BAD_PATH);
    assert_null(grpc_service_method_find(p4, sizeof(p4) - 1, &why));
    assert_int_equal(why, GRPC_LOOKUP_NO_SERVICE);
    for (size_t i = 0; i < grpc_service_method_count(); i++) {
        char path[128];
        int n = snprintf(path, sizeof(path), "/gateway_protocol.Gateway/%s",
                         grpc_service_method_at(i)->name);
        assert_ptr_equal(grpc_service_method_find(path, (size_t)n, &why),
                         grpc_service_method_at(i));
    }
}

int main(void)
{
    /* Writes to a peer that closed must fail with EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_table),
        cmocka_unit_test(test_options),
        cmocka_unit_test_setup_teardown(test_topology_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_message_ok, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unimplemented_rpc, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_method_and_service,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_protobuf, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_framing_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_grpc_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delayed_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rst_stream_cancels, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connection_loss_cancels, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_garbage_preface, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activate_jobs_stream, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connections_max, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_output_bound, setup, teardown),
    };
    return cmocka_run_group_tests_name("gateway-grpc", tests, NULL, NULL);
}
