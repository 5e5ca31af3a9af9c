/* command_api.c: the command API server (see command_api.h).
 *
 * Each accepted connection owns a proto_frame splitter. Bytes read are cut
 * into frames, each unpacked as a tandem.command.Request and handed to the
 * broker's handler; a frame that does not unpack, or an oversized length
 * prefix, closes the connection (the stream can no longer be trusted).
 * Responses are packed into malloc()ed frames and queued on their
 * connection; a uv_prepare handle (it runs once per loop iteration, right
 * before the loop would block) writes each connection's queue with ONE
 * uv_write of many buffers, so the answers of a whole loop turn cost one
 * system call per gateway. The bytes queued or being written are counted,
 * and a connection over write_bytes_max is closed instead of buffering
 * without bound.
 *
 * Lifecycle of a connection:  accepted -> reading -> (error | EOF | close)
 *   -> closing (uv_close) -> freed in the close callback.
 */
#define _POSIX_C_SOURCE 200809L
#include "broker/command_api.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

#define API_PENDING_MAX 4096 /* frames queued on a connection per turn */

struct api_conn {
    uv_tcp_t tcp;
    struct command_api *api;
    uint64_t id;
    struct proto_frame_splitter splitter;
    size_t write_bytes; /* queued or being written, not yet written */
    uv_buf_t *pending;  /* frames waiting for the next flush */
    uint32_t pending_count;
    uint32_t pending_cap;
    bool closing;
    struct api_conn *next;
    struct api_conn *prev;
};

struct command_api {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_prepare_t flusher;
    bool flusher_active;
    struct command_api_options opt;
    struct command_api_handler handler;
    char host[256];
    struct api_conn *conns;
    uint32_t conn_count;
    uint64_t next_conn_id;
    bool closing;
    uint32_t handles_open;
    void (*close_cb)(void *data);
    void *close_data;
};

struct api_write {
    uv_write_t req;
    struct api_conn *conn;
    uv_buf_t *bufs; /* the frames written, freed when done */
    uint32_t count;
    size_t len;
};

static void pending_free(struct api_conn *c)
{
    for (uint32_t i = 0; i < c->pending_count; i++) {
        free(c->pending[i].base);
    }
    free(c->pending);
    c->pending = NULL;
    c->pending_count = 0;
    c->pending_cap = 0;
}

static void api_maybe_done(struct command_api *api)
{
    if (api->closing && api->handles_open == 0) {
        void (*cb)(void *) = api->close_cb;
        void *data = api->close_data;
        free(api);
        if (cb != NULL) {
            cb(data);
        }
    }
}

static void conn_closed(uv_handle_t *h)
{
    struct api_conn *c = h->data;
    struct command_api *api = c->api;

    proto_frame_splitter_close(&c->splitter);
    pending_free(c);
    free(c);
    api->handles_open--;
    api_maybe_done(api);
}

static void conn_close(struct api_conn *c)
{
    struct command_api *api = c->api;

    if (c->closing) {
        return;
    }
    c->closing = true;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        api->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    api->conn_count--;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static struct api_conn *conn_find(struct command_api *api, uint64_t id)
{
    for (struct api_conn *c = api->conns; c != NULL; c = c->next) {
        if (c->id == id) {
            return c;
        }
    }
    return NULL;
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base != NULL ? suggested : 0;
}

static void conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct api_conn *c = s->data;
    struct command_api *api = c->api;
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t left = nread > 0 ? (size_t)nread : 0;

    if (nread < 0) {
        free(buf->base);
        conn_close(c);
        return;
    }
    while (left > 0 && !c->closing) {
        struct proto_frame frame;
        size_t used = 0;
        Tandem__Command__Request *req = NULL;
        char err[PROTO_ERRMSG_SIZE];
        int rv = proto_frame_splitter_feed(&c->splitter, p, left, &used,
                                           &frame);
        p += used;
        left -= used;
        if (rv < 0) {
            fprintf(stderr, "command api: closing connection %llu: %s\n",
                    (unsigned long long)c->id, c->splitter.errmsg);
            conn_close(c);
            break;
        }
        if (rv == 0) {
            break;
        }
        if (proto_command_request_unpack(NULL, frame.base, frame.len, &req,
                                         err) != 0) {
            fprintf(stderr, "command api: closing connection %llu: %s\n",
                    (unsigned long long)c->id, err);
            conn_close(c);
            break;
        }
        api->handler.request(api->handler.data, c->id, req);
        tandem__command__request__free_unpacked(req, NULL);
    }
    free(buf->base);
}

static void api_accept(uv_stream_t *server, int status)
{
    struct command_api *api = server->data;
    struct api_conn *c;

    if (status < 0 || api->closing) {
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return;
    }
    uv_tcp_init(api->loop, &c->tcp);
    c->tcp.data = c;
    c->api = api;
    api->handles_open++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        api->conn_count >= api->opt.connections_max) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
        return;
    }
    c->id = ++api->next_conn_id;
    proto_frame_splitter_init(&c->splitter, api->opt.frame_bytes_max);
    c->next = api->conns;
    if (api->conns != NULL) {
        api->conns->prev = c;
    }
    api->conns = c;
    api->conn_count++;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
}

int command_api_init(uv_loop_t *loop, struct command_api **out,
                     const struct command_api_options *opts,
                     const struct command_api_handler *handler)
{
    struct command_api *api = calloc(1, sizeof(*api));
    int rv;

    if (api == NULL) {
        return UV_ENOMEM;
    }
    api->loop = loop;
    api->opt = *opts;
    if (api->opt.connections_max == 0) {
        api->opt.connections_max = 256;
    }
    if (api->opt.write_bytes_max == 0) {
        api->opt.write_bytes_max = (size_t)64 << 20;
    }
    if (api->opt.frame_bytes_max == 0) {
        api->opt.frame_bytes_max = PROTO_COMMAND_FRAME_BYTES_DEFAULT;
    }
    snprintf(api->host, sizeof(api->host), "%s",
             opts->host != NULL ? opts->host : "0.0.0.0");
    api->opt.host = api->host;
    api->handler = *handler;
    rv = uv_tcp_init(loop, &api->listener);
    if (rv != 0) {
        free(api);
        return rv;
    }
    api->listener.data = api;
    uv_prepare_init(loop, &api->flusher);
    api->flusher.data = api;
    api->handles_open = 2;
    *out = api;
    return 0;
}

int command_api_start(struct command_api *api, char *errmsg, size_t len)
{
    struct sockaddr_storage addr;
    int rv;

    rv = uv_ip4_addr(api->host, api->opt.port, (struct sockaddr_in *)&addr);
    if (rv != 0) {
        rv = uv_ip6_addr(api->host, api->opt.port,
                         (struct sockaddr_in6 *)&addr);
    }
    if (rv == 0) {
        rv = uv_tcp_bind(&api->listener, (const struct sockaddr *)&addr, 0);
    }
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&api->listener, 128, api_accept);
    }
    if (rv != 0) {
        snprintf(errmsg, len, "command API: cannot listen on %s:%u: %s",
                 api->host, (unsigned)api->opt.port, uv_strerror(rv));
    }
    return rv;
}

int command_api_port(const struct command_api *api)
{
    struct sockaddr_storage addr;
    int namelen = sizeof(addr);

    if (uv_tcp_getsockname(&api->listener, (struct sockaddr *)&addr,
                           &namelen) != 0) {
        return -1;
    }
    if (addr.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    }
    return ntohs(((struct sockaddr_in *)&addr)->sin_port);
}

static void api_written(uv_write_t *req, int status)
{
    struct api_write *w = (struct api_write *)req;
    struct api_conn *c = w->conn;

    assert(c->write_bytes >= w->len);
    c->write_bytes -= w->len;
    for (uint32_t i = 0; i < w->count; i++) {
        free(w->bufs[i].base);
    }
    free(w->bufs);
    free(w);
    if (status < 0) {
        conn_close(c);
    }
}

/* Writes c's queued frames with one uv_write. */
static void conn_flush(struct api_conn *c)
{
    struct api_write *w;
    int rv;

    if (c->pending_count == 0 || c->closing) {
        return;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        conn_close(c); /* UNTESTED: out of memory */
        return;
    }
    w->conn = c;
    w->bufs = c->pending;
    w->count = c->pending_count;
    for (uint32_t i = 0; i < w->count; i++) {
        w->len += w->bufs[i].len;
    }
    c->pending = NULL;
    c->pending_count = 0;
    c->pending_cap = 0;
    rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, w->count,
                  api_written);
    if (rv != 0) {
        api_written(&w->req, rv);
    }
}

static void api_flush(uv_prepare_t *prepare)
{
    struct command_api *api = prepare->data;

    for (struct api_conn *c = api->conns; c != NULL; c = c->next) {
        conn_flush(c);
    }
    uv_prepare_stop(&api->flusher);
    api->flusher_active = false;
}

int command_api_respond(struct command_api *api, uint64_t conn_id,
                        const Tandem__Command__Response *resp)
{
    struct api_conn *c = conn_find(api, conn_id);
    uint8_t *frame = NULL;
    size_t len = 0;
    int rv;

    if (c == NULL || c->closing) {
        return UV_ENOTCONN;
    }
    rv = proto_command_response_pack(resp, api->opt.frame_bytes_max, &frame,
                                     &len);
    if (rv != 0) {
        return UV_EINVAL;
    }
    if (c->write_bytes + len > api->opt.write_bytes_max) {
        fprintf(stderr, "command api: connection %llu does not read its "
                "answers (%zu bytes queued); closing it\n",
                (unsigned long long)c->id, c->write_bytes);
        free(frame);
        conn_close(c);
        return UV_ENOBUFS;
    }
    if (c->pending_count == c->pending_cap) {
        uint32_t cap = c->pending_cap == 0 ? 16 : c->pending_cap * 2;
        uv_buf_t *n;
        if (c->pending_count >= API_PENDING_MAX) {
            conn_flush(c); /* a huge turn: write what we have now */
        }
        if (c->pending_count == c->pending_cap) {
            n = realloc(c->pending, cap * sizeof(*n));
            if (n == NULL) {
                free(frame);
                return UV_ENOMEM;
            }
            c->pending = n;
            c->pending_cap = cap;
        }
    }
    c->pending[c->pending_count++] = uv_buf_init((char *)frame,
                                                 (unsigned)len);
    c->write_bytes += len;
    if (!api->flusher_active && !api->closing) {
        uv_prepare_start(&api->flusher, api_flush);
        api->flusher_active = true;
    }
    return 0;
}

int command_api_respond_error(struct command_api *api, uint64_t conn_id,
                              uint64_t id, Tandem__Command__Code code,
                              uint32_t leader_hint, const char *message)
{
    Tandem__Command__Response resp = TANDEM__COMMAND__RESPONSE__INIT;
    Tandem__Command__Error err = TANDEM__COMMAND__ERROR__INIT;

    err.code = code;
    err.message = (char *)(message != NULL ? message : "");
    err.leader_hint = leader_hint;
    resp.id = id;
    resp.body_case = TANDEM__COMMAND__RESPONSE__BODY_ERROR;
    resp.error = &err;
    return command_api_respond(api, conn_id, &resp);
}

static void api_listener_closed(uv_handle_t *h)
{
    struct command_api *api = h->data;
    api->handles_open--;
    api_maybe_done(api);
}

void command_api_close(struct command_api *api, void (*cb)(void *data),
                       void *data)
{
    api->closing = true;
    api->close_cb = cb;
    api->close_data = data;
    while (api->conns != NULL) {
        conn_close(api->conns);
    }
    uv_close((uv_handle_t *)&api->flusher, api_listener_closed);
    uv_close((uv_handle_t *)&api->listener, api_listener_closed);
}
