/* grpc_session.c: gRPC over one HTTP/2 connection: the nghttp2 server
 * session callbacks, one struct grpc_stream per call, the request
 * framing, the backend call and the response.
 *
 * Data flow of one call (a stream), states in capitals:
 *
 *   HEADERS frame  -> on_begin_headers: stream allocated (or refused over
 *                     streams_max) -> on_header: :method, :path,
 *                     content-type, grpc-timeout, grpc-encoding kept
 *   end of headers -> checks, in gRPC's order: 405 non-POST, 415 content
 *                     type, UNIMPLEMENTED unknown service/method or
 *                     encoding, INTERNAL bad grpc-timeout; else BODY
 *   DATA frames    -> BODY: bytes buffered, bounded by message_bytes_max
 *                     (+5) and the conn's request_bytes_max
 *   END_STREAM     -> the 5-byte prefix checked (one uncompressed message)
 *                     -> protobuf unpack -> PENDING: backend->call()
 *   backend cb     -> grpc_stream_send(response), grpc_stream_finish(OK)
 *                     or finish(status): DONE (answered)
 *   streaming      -> (ActivateJobs, StreamActivatedJobs with a backend
 *                     offering call_stream) backend send -> one message
 *                     queued per send while PENDING; the backend cb ends
 *                     the stream with trailers
 *   deadline timer -> DONE with DEADLINE_EXCEEDED; backend->cancel()
 *   stream closed  -> (sent, or reset by the client) stream freed; a
 *                     PENDING call is cancelled first
 *
 * The response: HEADERS (:status 200, content-type application/grpc), the
 * queued messages through an nghttp2 data provider (deferred while the
 * queue is empty and the call not finished), then trailers (grpc-status,
 * grpc-message percent-encoded). An error before any message is a
 * trailers-only response: one HEADERS frame with END_STREAM.
 *
 *   gRPC message on the wire (gRPC over HTTP/2, "Length-Prefixed-Message"):
 *   +------------+---------------------------+------------------------+
 *   | flag: 1 B  | length: 4 B, big-endian   | protobuf: length bytes |
 *   | 0 = plain  |                           |                        |
 *   +------------+---------------------------+------------------------+ */
#define _POSIX_C_SOURCE 200809L
#include "gateway/grpc_server.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGE_PREFIX_BYTES 5u
/* The longest grpc-message we send, before percent-encoding. */
#define STATUS_MESSAGE_BYTES_MAX 1024u
/* grpc-timeout: at most 8 digits and a unit (gRPC over HTTP/2). */
#define TIMEOUT_DIGITS_MAX 8u
/* The highest gRPC status code (UNAUTHENTICATED). */
#define STATUS_CODE_MAX 16

enum stream_state {
    STREAM_HEADERS = 0, /* receiving request headers */
    STREAM_BODY,        /* receiving the request message */
    STREAM_PENDING,     /* the backend has the call */
    STREAM_DONE,        /* answered (finish called): sending, or ignoring */
};

struct grpc_stream {
    struct grpc_conn *conn;
    struct grpc_stream *prev, *next; /* in conn->streams */
    int32_t id;
    enum stream_state state;
    const struct grpc_method *method; /* after the headers */

    /* Request headers. */
    bool method_post;       /* :method is POST */
    bool content_type_grpc; /* application/grpc or application/grpc+... */
    bool timeout_present;
    bool timeout_bad;
    bool encoding_unsupported; /* a grpc-encoding other than identity */
    uint64_t timeout_ms;
    uint64_t deadline_ms; /* absolute (uv_now), 0: none */
    char path[GRPC_PATH_BYTES_MAX + 1];
    size_t path_len;
    bool path_long;
    char encoding[32];

    /* Request body and message. */
    uint8_t *body;
    size_t body_len, body_cap;
    ProtobufCMessage *request;
    bool in_backend; /* backend->call returned 0, cb not yet run */

    /* Response. */
    uint8_t *queue; /* packed, prefixed messages not yet taken by nghttp2 */
    size_t queue_len, queue_pos, queue_cap;
    uint32_t messages_sent;
    bool headers_submitted;
    bool finished;
    int status;
    char *status_message; /* percent-encoded, NULL for none */
};

/* ---- Helpers ---------------------------------------------------------- */

static bool bytes_eq(const uint8_t *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && memcmp(a, b, blen) == 0;
}

static bool bytes_prefix(const uint8_t *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen >= blen && memcmp(a, b, blen) == 0;
}

/* Parses a grpc-timeout value ("100m"): 1 to 8 digits and a unit among
 * H M S m u n. Returns 0 and the timeout in ms (rounded up), or -1. */
static int stream_timeout_parse(const uint8_t *v, size_t len, uint64_t *ms)
{
    uint64_t n = 0;
    size_t digits = len - 1;

    if (len < 2 || digits > TIMEOUT_DIGITS_MAX) {
        return -1;
    }
    for (size_t i = 0; i < digits; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return -1;
        }
        n = n * 10u + (uint64_t)(v[i] - '0');
    }
    assert(n < 100000000u);
    switch (v[digits]) {
    case 'H': *ms = n * 3600000u; break;
    case 'M': *ms = n * 60000u; break;
    case 'S': *ms = n * 1000u; break;
    case 'm': *ms = n; break;
    case 'u': *ms = (n + 999u) / 1000u; break;
    case 'n': *ms = (n + 999999u) / 1000000u; break;
    default: return -1;
    }
    return 0;
}

/* Percent-encodes a status message for grpc-message (gRPC over HTTP/2:
 * bytes outside 0x20..0x7E and '%' become %XX). Returns a new string or
 * NULL (none, or out of memory: the message is then left out). */
static char *status_message_encode(const char *message)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len;
    char *out, *p;

    if (message == NULL || message[0] == '\0') {
        return NULL;
    }
    len = strnlen(message, STATUS_MESSAGE_BYTES_MAX);
    out = malloc(len * 3u + 1u);
    if (out == NULL) {
        return NULL;
    }
    p = out;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)message[i];
        if (c < 0x20 || c > 0x7E || c == '%') {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15u];
        } else {
            *p++ = (char)c;
        }
    }
    *p = '\0';
    assert((size_t)(p - out) <= len * 3u);
    return out;
}

#define NV(name, value, value_len)                                       \
    {(uint8_t *)(name), (uint8_t *)(value), sizeof(name) - 1, (value_len), \
     NGHTTP2_NV_FLAG_NONE}

/* ---- Streams ---------------------------------------------------------- */

static struct grpc_stream *stream_create(struct grpc_conn *conn, int32_t id)
{
    struct grpc_stream *stream = calloc(1, sizeof(*stream));

    if (stream == NULL) {
        return NULL;
    }
    stream->conn = conn;
    stream->id = id;
    stream->state = STREAM_HEADERS;
    stream->next = conn->streams;
    if (conn->streams != NULL) {
        conn->streams->prev = stream;
    }
    conn->streams = stream;
    conn->stream_count++;
    assert(conn->stream_count <= conn->srv->opts.streams_max);
    return stream;
}

static void stream_body_drop(struct grpc_stream *stream)
{
    struct grpc_conn *conn = stream->conn;

    assert(conn->request_bytes >= stream->body_cap);
    conn->request_bytes -= stream->body_cap;
    free(stream->body);
    stream->body = NULL;
    stream->body_len = stream->body_cap = 0;
}

static void stream_request_drop(struct grpc_stream *stream)
{
    assert(!stream->in_backend);
    if (stream->request != NULL) {
        protobuf_c_message_free_unpacked(stream->request, NULL);
        stream->request = NULL;
    }
}

/* Frees stream; a call still with the backend is cancelled first. */
static void stream_free(struct grpc_stream *stream)
{
    struct grpc_conn *conn = stream->conn;
    struct grpc_server *srv = conn->srv;

    if (stream->in_backend) {
        stream->in_backend = false;
        srv->calls_cancelled++;
        srv->backend->cancel(srv->backend, stream);
    }
    stream_request_drop(stream);
    stream_body_drop(stream);
    free(stream->queue);
    free(stream->status_message);
    if (stream->prev != NULL) {
        stream->prev->next = stream->next;
    } else {
        assert(conn->streams == stream);
        conn->streams = stream->next;
    }
    if (stream->next != NULL) {
        stream->next->prev = stream->prev;
    }
    assert(conn->stream_count > 0);
    conn->stream_count--;
    if (conn->session != NULL) {
        (void)nghttp2_session_set_stream_user_data(conn->session, stream->id,
                                                   NULL);
    }
    free(stream);
}

/* The data provider: hands nghttp2 the queued messages; at the end of a
 * finished call, submits the trailers instead of END_STREAM. */
static ssize_t stream_data_read_cb(nghttp2_session *session, int32_t id,
                                   uint8_t *buf, size_t length,
                                   uint32_t *flags,
                                   nghttp2_data_source *source,
                                   void *user_data)
{
    struct grpc_stream *stream = source->ptr;
    size_t avail, n;

    (void)user_data;
    assert(stream != NULL);
    assert(stream->id == id);
    assert(stream->queue_pos <= stream->queue_len);
    avail = stream->queue_len - stream->queue_pos;
    n = avail < length ? avail : length;
    if (n > 0) {
        memcpy(buf, stream->queue + stream->queue_pos, n);
        stream->queue_pos += n;
        if (stream->queue_pos == stream->queue_len) {
            stream->queue_pos = stream->queue_len = 0;
        }
    }
    if (stream->queue_len == 0 && stream->finished) {
        char code[4];
        nghttp2_nv nv[2] = {NV("grpc-status", code, 0),
                            NV("grpc-message", "", 0)};
        size_t nvlen = 1;

        nv[0].valuelen = (size_t)snprintf(code, sizeof(code), "%d",
                                          stream->status);
        if (stream->status_message != NULL) {
            nv[1].value = (uint8_t *)stream->status_message;
            nv[1].valuelen = strlen(stream->status_message);
            nvlen = 2;
        }
        if (nghttp2_submit_trailer(session, id, nv, nvlen) != 0) {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets it */
        }
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        return (ssize_t)n;
    }
    if (n == 0) {
        return NGHTTP2_ERR_DEFERRED; /* resumed by send or finish */
    }
    return (ssize_t)n;
}

/* Submits the response headers with the data provider (once). */
static int stream_headers_submit(struct grpc_stream *stream)
{
    nghttp2_nv nv[] = {NV(":status", "200", 3),
                       NV("content-type", "application/grpc", 16),
                       NV("grpc-accept-encoding", "identity", 8)};
    nghttp2_data_provider provider;

    assert(!stream->headers_submitted);
    provider.source.ptr = stream;
    provider.read_callback = stream_data_read_cb;
    if (nghttp2_submit_response(stream->conn->session, stream->id, nv,
                                sizeof(nv) / sizeof(nv[0]), &provider) != 0) {
        return GRPC_E_NOMEM;
    }
    stream->headers_submitted = true;
    return 0;
}

/* Wakes the data provider after the queue or the finish flag changed. */
static void stream_resume(struct grpc_stream *stream)
{
    struct grpc_conn *conn = stream->conn;

    assert(stream->headers_submitted);
    /* Fails harmlessly when the provider is not deferred. */
    (void)nghttp2_session_resume_data(conn->session, stream->id);
    grpc__conn_flush(conn);
}

int grpc_stream_send(struct grpc_stream *stream, const ProtobufCMessage *msg)
{
    struct grpc_server_options *opts;
    size_t size, need;

    assert(stream != NULL);
    assert(msg != NULL);
    opts = &stream->conn->srv->opts;
    if (stream->finished || stream->conn->closing) {
        return GRPC_E_STATE;
    }
    assert(stream->method != NULL);
    if (msg->descriptor != stream->method->output) {
        return GRPC_E_INVALID;
    }
    if (!stream->method->server_streaming && stream->messages_sent > 0) {
        return GRPC_E_STATE;
    }
    size = protobuf_c_message_get_packed_size(msg);
    if (size > opts->message_bytes_max) {
        return GRPC_E_INVALID;
    }
    need = stream->queue_len + MESSAGE_PREFIX_BYTES + size;
    if (need > opts->stream_queue_bytes_max) {
        return GRPC_E_BUSY;
    }
    if (need > stream->queue_cap) {
        size_t cap = stream->queue_cap * 2u > need ? stream->queue_cap * 2u
                                                   : need;
        uint8_t *q = realloc(stream->queue, cap);
        if (q == NULL) {
            return GRPC_E_NOMEM;
        }
        stream->queue = q;
        stream->queue_cap = cap;
    }
    {
        uint8_t *p = stream->queue + stream->queue_len;
        size_t packed;

        p[0] = 0; /* not compressed */
        p[1] = (uint8_t)(size >> 24);
        p[2] = (uint8_t)(size >> 16);
        p[3] = (uint8_t)(size >> 8);
        p[4] = (uint8_t)size;
        packed = protobuf_c_message_pack(msg, p + MESSAGE_PREFIX_BYTES);
        assert(packed == size);
        stream->queue_len = need;
    }
    stream->messages_sent++;
    if (!stream->headers_submitted) {
        if (stream_headers_submit(stream) != 0) {
            return GRPC_E_NOMEM; /* UNTESTED: nghttp2 out of memory */
        }
        grpc__conn_flush(stream->conn);
        return 0;
    }
    stream_resume(stream);
    return 0;
}

/* A trailers-only response, or an HTTP error with gRPC status headers
 * (http_status other than "200"), ending the stream. */
static void stream_headers_only(struct grpc_stream *stream,
                                const char *http_status)
{
    char code[4];
    nghttp2_nv nv[4] = {NV(":status", http_status, strlen(http_status)),
                        NV("content-type", "application/grpc", 16),
                        NV("grpc-status", code, 0),
                        NV("grpc-message", "", 0)};
    size_t nvlen = 3;

    nv[2].valuelen = (size_t)snprintf(code, sizeof(code), "%d",
                                      stream->status);
    if (stream->status_message != NULL) {
        nv[3].value = (uint8_t *)stream->status_message;
        nv[3].valuelen = strlen(stream->status_message);
        nvlen = 4;
    }
    stream->headers_submitted = true;
    if (nghttp2_submit_response(stream->conn->session, stream->id, nv, nvlen,
                                NULL) != 0) {
        /* UNTESTED: out of memory in nghttp2; reset instead. */
        (void)nghttp2_submit_rst_stream(stream->conn->session,
                                        NGHTTP2_FLAG_NONE, stream->id,
                                        NGHTTP2_INTERNAL_ERROR);
    }
}

/* Finishes with an HTTP status (405, 415) or a trailers-only error. */
static void stream_finish_http(struct grpc_stream *stream,
                               const char *http_status, int status,
                               const char *message)
{
    assert(!stream->finished);
    assert(!stream->headers_submitted);
    if (status == GATEWAY_STATUS_OK) {
        assert(stream->messages_sent == 0); /* a stream of no messages */
    }
    stream->finished = true;
    stream->status = status;
    stream->status_message = status_message_encode(message);
    stream->state = STREAM_DONE;
    stream_body_drop(stream);
    stream_headers_only(stream, http_status);
    grpc__conn_flush(stream->conn);
}

int grpc_stream_finish(struct grpc_stream *stream, int status,
                       const char *message)
{
    assert(stream != NULL);
    if (stream->finished) {
        return GRPC_E_STATE;
    }
    if (status < 0 || status > STATUS_CODE_MAX) {
        status = GATEWAY_STATUS_UNKNOWN;
    }
    if (status == GATEWAY_STATUS_OK && stream->method != NULL &&
        !stream->method->server_streaming && stream->messages_sent == 0) {
        status = GATEWAY_STATUS_INTERNAL;
        message = "No response message for a unary call";
    }
    if (stream->conn->closing) {
        stream->finished = true;
        return 0;
    }
    if (!stream->headers_submitted) {
        stream_finish_http(stream, "200", status, message);
        return 0;
    }
    stream->finished = true;
    stream->status = status;
    stream->status_message = status_message_encode(message);
    stream->state = STREAM_DONE;
    stream_resume(stream);
    return 0;
}

/* ---- The backend call ------------------------------------------------- */

static void stream_backend_cb(void *req_data, int status, const char *message,
                              const ProtobufCMessage *response)
{
    struct grpc_stream *stream = req_data;
    struct grpc_conn *conn;

    assert(stream != NULL);
    assert(stream->in_backend);
    assert(stream->state == STREAM_PENDING);
    conn = stream->conn;
    stream->in_backend = false;
    conn->depth++; /* flush once, below */
    if (status == GATEWAY_STATUS_OK && response == NULL &&
        stream->method->server_streaming) {
        /* The end of a stream: its messages went out through send. */
        (void)grpc_stream_finish(stream, GATEWAY_STATUS_OK, NULL);
    } else if (status == GATEWAY_STATUS_OK) {
        int rv = response != NULL ? grpc_stream_send(stream, response)
                                  : GRPC_E_INVALID;
        if (rv == 0) {
            (void)grpc_stream_finish(stream, GATEWAY_STATUS_OK, NULL);
        } else {
            (void)grpc_stream_finish(stream, GATEWAY_STATUS_INTERNAL,
                                     rv == GRPC_E_INVALID
                                         ? "Bad response from the backend"
                                         : "Cannot queue the response");
        }
    } else {
        (void)grpc_stream_finish(stream, status, message);
    }
    assert(stream->finished);
    stream_request_drop(stream);
    conn->depth--;
    grpc__conn_flush_later(conn);
}

/* One message of a server-streaming backend call (backend.h). */
static int64_t stream_backend_send_cb(void *req_data,
                                      const ProtobufCMessage *msg)
{
    struct grpc_stream *stream = req_data;
    struct grpc_conn *conn;
    int rv;

    assert(stream != NULL);
    assert(stream->in_backend);
    assert(stream->state == STREAM_PENDING);
    assert(stream->method->server_streaming);
    conn = stream->conn;
    if (stream->finished || conn->closing) {
        return GATEWAY_BACKEND_E_GONE;
    }
    if (msg != NULL) {
        conn->depth++; /* flush once per loop turn, below */
        rv = grpc_stream_send(stream, msg);
        conn->depth--;
        if (rv == GRPC_E_BUSY) {
            return GATEWAY_BACKEND_E_BUSY;
        }
        if (rv != 0) {
            return GATEWAY_BACKEND_E_GONE; /* a bad message or no memory */
        }
        grpc__conn_flush_later(conn);
    }
    assert(stream->queue_pos <= stream->queue_len);
    return (int64_t)(stream->queue_len - stream->queue_pos);
}

/* END_STREAM on a request in BODY: checks the framing, unpacks the
 * message and hands it to the backend. */
static void stream_dispatch(struct grpc_stream *stream)
{
    struct grpc_conn *conn = stream->conn;
    struct grpc_server *srv = conn->srv;
    const uint8_t *b = stream->body;
    uint32_t len;
    int rv;

    assert(stream->state == STREAM_BODY);
    assert(stream->method != NULL);
    if (stream->body_len == 0) {
        stream_finish_http(stream, "200", GATEWAY_STATUS_INTERNAL,
                           "Half-closed without a request");
        return;
    }
    if (stream->body_len < MESSAGE_PREFIX_BYTES) {
        stream_finish_http(stream, "200", GATEWAY_STATUS_INTERNAL,
                           "Encountered end-of-stream mid-frame");
        return;
    }
    len = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 |
          (uint32_t)b[4];
    /* The prefix was checked when it arrived (stream_data_append). */
    assert(b[0] == 0);
    assert(len <= srv->opts.message_bytes_max);
    if (stream->body_len < MESSAGE_PREFIX_BYTES + (size_t)len) {
        stream_finish_http(stream, "200", GATEWAY_STATUS_INTERNAL,
                           "Encountered end-of-stream mid-frame");
        return;
    }
    if (stream->body_len > MESSAGE_PREFIX_BYTES + (size_t)len) {
        stream_finish_http(stream, "200", GATEWAY_STATUS_INTERNAL,
                           "Too many requests");
        return;
    }
    stream->request = protobuf_c_message_unpack(
        stream->method->input, NULL, len, b + MESSAGE_PREFIX_BYTES);
    stream_body_drop(stream);
    if (stream->request == NULL) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "Invalid protobuf byte sequence: cannot decode %s",
                 stream->method->input->name);
        stream_finish_http(stream, "200", GATEWAY_STATUS_INVALID_ARGUMENT,
                           msg);
        return;
    }
    if (stream->timeout_present) {
        stream->deadline_ms = uv_now(srv->loop) + stream->timeout_ms;
        if (stream->deadline_ms == 0) {
            stream->deadline_ms = 1; /* 0 means none to the backend */
        }
    }
    stream->state = STREAM_PENDING;
    stream->in_backend = true;
    srv->calls_started++;
    if (stream->method->server_streaming &&
        srv->backend->call_stream != NULL) {
        rv = srv->backend->call_stream(srv->backend, stream->method->name,
                                       stream->request, stream->deadline_ms,
                                       stream_backend_send_cb,
                                       stream_backend_cb, stream);
    } else {
        rv = srv->backend->call(srv->backend, stream->method->name,
                                stream->request, stream->deadline_ms,
                                stream_backend_cb, stream);
    }
    if (rv != 0) {
        /* A programming error in the backend: cb will not run. */
        assert(stream->in_backend);
        stream->in_backend = false;
        stream_request_drop(stream);
        stream_finish_http(stream, "200", GATEWAY_STATUS_INTERNAL,
                           "The gateway could not start the call");
        return;
    }
    if (stream->in_backend && stream->deadline_ms != 0) {
        grpc__conn_timer_arm(conn, stream->deadline_ms);
    }
}

/* End of the request headers: the checks gRPC servers make, in order. */
static void stream_headers_check(struct grpc_stream *stream)
{
    enum grpc_lookup why;
    char msg[GRPC_PATH_BYTES_MAX + 64];

    assert(stream->state == STREAM_HEADERS);
    if (!stream->method_post) {
        stream_finish_http(stream, "405", GATEWAY_STATUS_INTERNAL,
                           "Method not allowed: gRPC requires POST");
        return;
    }
    if (!stream->content_type_grpc) {
        stream_finish_http(stream, "415", GATEWAY_STATUS_INTERNAL,
                           "Unsupported content-type: gRPC requires "
                           "application/grpc");
        return;
    }
    stream->method = stream->path_long
                         ? NULL
                         : grpc_service_method_find(stream->path,
                                                    stream->path_len, &why);
    if (stream->method == NULL) {
        snprintf(msg, sizeof(msg), "Method not found: %.*s",
                 (int)(stream->path_len > 0 ? stream->path_len - 1 : 0),
                 stream->path + (stream->path_len > 0 ? 1 : 0));
        stream_finish_http(stream, "200", GATEWAY_STATUS_UNIMPLEMENTED, msg);
        return;
    }
    if (stream->encoding_unsupported) {
        snprintf(msg, sizeof(msg), "Can't find decompressor for %s",
                 stream->encoding);
        stream_finish_http(stream, "200", GATEWAY_STATUS_UNIMPLEMENTED, msg);
        return;
    }
    if (stream->timeout_bad) {
        stream_finish_http(stream, "200", GATEWAY_STATUS_INTERNAL,
                           "Invalid grpc-timeout header");
        return;
    }
    stream->state = STREAM_BODY;
}

/* Buffers request bytes within the bounds; answers an error over them. */
static void stream_data_append(struct grpc_stream *stream, const uint8_t *data,
                               size_t len)
{
    struct grpc_conn *conn = stream->conn;
    const struct grpc_server_options *opts = &conn->srv->opts;
    size_t need = stream->body_len + len;

    assert(stream->state == STREAM_BODY);
    if (need > stream->body_cap) {
        /* Grow to the declared message size when known, else double. */
        size_t cap = stream->body_cap * 2u > need ? stream->body_cap * 2u
                                                  : need;
        size_t limit = MESSAGE_PREFIX_BYTES + opts->message_bytes_max;
        uint8_t *b;

        if (need > limit) {
            cap = need; /* over the limit: refused below */
        } else if (cap > limit) {
            cap = limit;
        }
        if (need <= limit && conn->request_bytes - stream->body_cap + cap >
                                 opts->request_bytes_max) {
            stream_finish_http(stream, "200",
                               GATEWAY_STATUS_RESOURCE_EXHAUSTED,
                               "Too many request bytes buffered on this "
                               "connection");
            return;
        }
        if (need > limit) {
            char msg[96];
            snprintf(msg, sizeof(msg),
                     "gRPC message exceeds maximum size %u: %zu",
                     (unsigned)opts->message_bytes_max,
                     need - MESSAGE_PREFIX_BYTES);
            stream_finish_http(stream, "200",
                               GATEWAY_STATUS_RESOURCE_EXHAUSTED, msg);
            return;
        }
        b = realloc(stream->body, cap);
        if (b == NULL) {
            stream_finish_http(stream, "200",
                               GATEWAY_STATUS_RESOURCE_EXHAUSTED,
                               "Out of memory for the request");
            return;
        }
        conn->request_bytes += cap - stream->body_cap;
        stream->body = b;
        stream->body_cap = cap;
    }
    memcpy(stream->body + stream->body_len, data, len);
    stream->body_len = need;
    assert(stream->body_len <= stream->body_cap);

    /* Check the prefix as soon as it is here, to refuse early. */
    if (stream->body_len >= MESSAGE_PREFIX_BYTES) {
        const uint8_t *b = stream->body;
        uint32_t declared = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 |
                            (uint32_t)b[3] << 8 | (uint32_t)b[4];
        if (b[0] == 1) {
            stream_finish_http(stream, "200", GATEWAY_STATUS_INTERNAL,
                               "Can't decode compressed gRPC message as "
                               "compression not configured");
        } else if (b[0] != 0) {
            stream_finish_http(stream, "200", GATEWAY_STATUS_INTERNAL,
                               "gRPC frame header malformed: reserved bits "
                               "not zero");
        } else if (declared > opts->message_bytes_max) {
            char msg[96];
            snprintf(msg, sizeof(msg),
                     "gRPC message exceeds maximum size %u: %u",
                     (unsigned)opts->message_bytes_max, (unsigned)declared);
            stream_finish_http(stream, "200",
                               GATEWAY_STATUS_RESOURCE_EXHAUSTED, msg);
        }
    }
}

/* ---- nghttp2 callbacks ----------------------------------------------- */

static struct grpc_stream *session_stream(nghttp2_session *session,
                                          int32_t id)
{
    return nghttp2_session_get_stream_user_data(session, id);
}

static int session_on_begin_headers(nghttp2_session *session,
                                    const nghttp2_frame *frame,
                                    void *user_data)
{
    struct grpc_conn *conn = user_data;
    struct grpc_stream *stream;

    if (frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0; /* trailers of a known stream */
    }
    if (conn->stream_count >= conn->srv->opts.streams_max) {
        (void)nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE,
                                        frame->hd.stream_id,
                                        NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    stream = stream_create(conn, frame->hd.stream_id);
    if (stream == NULL) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* UNTESTED: resets */
    }
    if (nghttp2_session_set_stream_user_data(session, frame->hd.stream_id,
                                             stream) != 0) {
        stream_free(stream); /* UNTESTED: the stream vanished */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

static int session_on_header(nghttp2_session *session,
                             const nghttp2_frame *frame, const uint8_t *name,
                             size_t namelen, const uint8_t *value,
                             size_t valuelen, uint8_t flags, void *user_data)
{
    struct grpc_stream *stream = session_stream(session, frame->hd.stream_id);

    (void)flags;
    (void)user_data;
    if (stream == NULL || stream->state != STREAM_HEADERS) {
        return 0; /* refused, or trailers: ignored */
    }
    if (bytes_eq(name, namelen, ":method")) {
        stream->method_post = bytes_eq(value, valuelen, "POST");
    } else if (bytes_eq(name, namelen, ":path")) {
        if (valuelen > GRPC_PATH_BYTES_MAX) {
            stream->path_long = true;
            valuelen = GRPC_PATH_BYTES_MAX;
        }
        memcpy(stream->path, value, valuelen);
        stream->path[valuelen] = '\0';
        stream->path_len = valuelen;
    } else if (bytes_eq(name, namelen, "content-type")) {
        stream->content_type_grpc =
            bytes_eq(value, valuelen, "application/grpc") ||
            bytes_prefix(value, valuelen, "application/grpc+") ||
            bytes_prefix(value, valuelen, "application/grpc;");
    } else if (bytes_eq(name, namelen, "grpc-timeout")) {
        stream->timeout_present = true;
        stream->timeout_bad =
            stream_timeout_parse(value, valuelen, &stream->timeout_ms) != 0;
    } else if (bytes_eq(name, namelen, "grpc-encoding")) {
        stream->encoding_unsupported = !bytes_eq(value, valuelen, "identity");
        snprintf(stream->encoding, sizeof(stream->encoding), "%.*s",
                 (int)(valuelen < sizeof(stream->encoding) - 1
                           ? valuelen
                           : sizeof(stream->encoding) - 1),
                 (const char *)value);
    }
    return 0;
}

static int session_on_frame_recv(nghttp2_session *session,
                                 const nghttp2_frame *frame, void *user_data)
{
    struct grpc_stream *stream;

    (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) {
        return 0;
    }
    stream = session_stream(session, frame->hd.stream_id);
    if (stream == NULL) {
        return 0;
    }
    if (frame->hd.type == NGHTTP2_HEADERS &&
        stream->state == STREAM_HEADERS) {
        stream_headers_check(stream);
    }
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 &&
        stream->state == STREAM_BODY) {
        stream_dispatch(stream);
    }
    return 0;
}

static int session_on_data_chunk_recv(nghttp2_session *session,
                                      uint8_t flags, int32_t id,
                                      const uint8_t *data, size_t len,
                                      void *user_data)
{
    struct grpc_stream *stream = session_stream(session, id);

    (void)flags;
    (void)user_data;
    if (stream == NULL || stream->state != STREAM_BODY || len == 0) {
        return 0; /* answered already: the rest is dropped */
    }
    stream_data_append(stream, data, len);
    return 0;
}

static int session_on_stream_close(nghttp2_session *session, int32_t id,
                                   uint32_t error_code, void *user_data)
{
    struct grpc_stream *stream = session_stream(session, id);

    (void)error_code;
    (void)user_data;
    if (stream != NULL) {
        stream_free(stream); /* cancels a pending call (RST_STREAM) */
    }
    return 0;
}

int grpc__session_init(struct grpc_conn *conn)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    nghttp2_settings_entry settings[2];
    int rv;

    assert(conn != NULL);
    assert(conn->session == NULL);
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        return GRPC_E_NOMEM;
    }
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return GRPC_E_NOMEM;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(
        cbs, session_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, session_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cbs, session_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, session_on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cbs, session_on_stream_close);
    /* The peer's stream limit bounds nghttp2's idle/closed stream memory. */
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    /* nghttp2's rapid-reset guard (CVE-2023-44487) answers more than 1000
     * received RST_STREAMs, refilled at 33 per second, with GOAWAY. The
     * Node.js gRPC client (zeebe-node) resets every stream once its call
     * is complete, so a busy long-lived client connection trips the
     * default and loses every call in flight. Open streams stay capped by
     * streams_max and every call by the backend's backpressure, so allow
     * one reset per call at high rates. */
    nghttp2_option_set_stream_reset_rate_limit(
        opt, GRPC_STREAM_RESETS_BURST, GRPC_STREAM_RESETS_PER_SECOND);
    rv = nghttp2_session_server_new2(&conn->session, cbs, conn, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        conn->session = NULL;
        return GRPC_E_NOMEM;
    }
    settings[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
    settings[0].value = conn->srv->opts.streams_max;
    settings[1].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE;
    settings[1].value = 16384;
    rv = nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings,
                                 2);
    if (rv != 0) {
        nghttp2_session_del(conn->session);
        conn->session = NULL;
        return GRPC_E_NOMEM;
    }
    return 0;
}

void grpc__session_close(struct grpc_conn *conn)
{
    assert(conn != NULL);
    assert(conn->closing);
    while (conn->streams != NULL) {
        stream_free(conn->streams);
    }
    assert(conn->stream_count == 0);
    assert(conn->request_bytes == 0);
    if (conn->session != NULL) {
        nghttp2_session_del(conn->session);
        conn->session = NULL;
    }
}

uint64_t grpc__session_expire(struct grpc_conn *conn, uint64_t now_ms)
{
    struct grpc_server *srv = conn->srv;
    uint64_t next = 0;

    assert(conn->depth > 0); /* no flush while walking the list */
    for (struct grpc_stream *s = conn->streams; s != NULL; s = s->next) {
        if (!s->in_backend || s->deadline_ms == 0) {
            continue;
        }
        assert(s->state == STREAM_PENDING);
        if (s->deadline_ms <= now_ms) {
            s->in_backend = false;
            srv->calls_expired++;
            srv->backend->cancel(srv->backend, s);
            stream_request_drop(s);
            (void)grpc_stream_finish(s, GATEWAY_STATUS_DEADLINE_EXCEEDED,
                                     "Deadline exceeded");
            assert(s->finished);
        } else if (next == 0 || s->deadline_ms < next) {
            next = s->deadline_ms;
        }
    }
    return next;
}
