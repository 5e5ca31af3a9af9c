/* grpc_server.h: the gateway's gRPC server (private to gateway/): Zeebe's
 * gateway_protocol.Gateway service over HTTP/2 cleartext (h2c, prior
 * knowledge), on libuv and nghttp2's I/O-free session API.
 *
 * Data flow:
 *
 *   TCP bytes --uv_read--> nghttp2_session_mem_recv (grpc_session.c)
 *     --HEADERS--> method lookup (grpc_service.c), grpc-timeout
 *     --DATA-----> 5-byte length-prefixed message, bounded buffer
 *     --END_STREAM--> protobuf unpack --> backend->call(rpc, request,
 *                                                     deadline, cb, stream)
 *   (server streaming: backend->call_stream; each send --> one
 *    grpc_stream_send, the final cb --> grpc_stream_finish)
 *   cb --> grpc_stream_send(response) + grpc_stream_finish(status)
 *     --> nghttp2 response HEADERS, DATA, trailers (grpc-status,
 *         grpc-message) --nghttp2_session_mem_send--> uv_write --> TCP
 *
 * Errors before any response message use a trailers-only response. A
 * stream reset by the client, a lost connection and grpc_server_close()
 * cancel the backend call (backend->cancel). A per-connection uv_timer
 * answers DEADLINE_EXCEEDED itself when the backend has not answered by
 * the deadline, then cancels the backend call.
 *
 * Everything is bounded (struct grpc_server_options): connections,
 * concurrent streams per connection, message size, buffered request bytes
 * per connection, buffered output bytes per connection (reading stops
 * while the output is over its bound; nghttp2 applies HTTP/2 flow control
 * to what is pulled out). One loop thread; nothing here is thread-safe.
 * The process must ignore SIGPIPE (libuv writes with write(2)): a client
 * that vanishes mid-write is then an EPIPE that closes its connection. */
#ifndef TANDEM_GATEWAY_GRPC_SERVER_H
#define TANDEM_GATEWAY_GRPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "gateway/backend.h"

/* Defaults of struct grpc_server_options. gRPC's default maximum message
 * size is 4 MiB, which Zeebe keeps (zeebe.gateway.network.maxMessageSize). */
#define GRPC_CONNECTIONS_MAX_DEFAULT 256u
#define GRPC_STREAMS_MAX_DEFAULT 128u
/* RST_STREAMs a client may send: a burst, refilled per second (see
 * grpc_session.c: clients reset every completed call). */
#define GRPC_STREAM_RESETS_BURST 100000u
#define GRPC_STREAM_RESETS_PER_SECOND 100000u
#define GRPC_MESSAGE_BYTES_MAX_DEFAULT (4u * 1024u * 1024u)
#define GRPC_REQUEST_BYTES_MAX_DEFAULT (16u * 1024u * 1024u)
#define GRPC_OUTPUT_BYTES_MAX_DEFAULT (256u * 1024u)
/* Response messages queued on one stream and not yet taken by nghttp2. */
#define GRPC_STREAM_QUEUE_BYTES_MAX_DEFAULT (8u * 1024u * 1024u)

/* Error codes of this module (negative, like libuv's). */
#define GRPC_E_NOMEM (-1)    /* allocation failed */
#define GRPC_E_BUSY (-2)     /* a bound is reached: retry later */
#define GRPC_E_STATE (-3)    /* the object is in the wrong state */
#define GRPC_E_INVALID (-4)  /* a bad argument */
#define GRPC_E_IO (-5)       /* libuv failed; see errmsg */
#define GRPC_E_PROTOCOL (-6) /* the peer broke HTTP/2: connection ended */

struct grpc_server_options {
    uint32_t connections_max;       /* open connections; more are closed */
    uint32_t streams_max;           /* SETTINGS_MAX_CONCURRENT_STREAMS */
    uint32_t message_bytes_max;     /* one request or response message */
    uint32_t request_bytes_max;     /* request bytes buffered, per conn */
    uint32_t output_bytes_max;      /* written, not yet sent, per conn */
    uint32_t stream_queue_bytes_max; /* response bytes queued per stream */
};

/* Fills opts with the _DEFAULT values above. */
void grpc_server_options_default(struct grpc_server_options *opts);

struct grpc_conn;
struct grpc_stream;
struct grpc_server;

typedef void (*grpc_server_close_cb)(struct grpc_server *srv);

/* Caller-allocated; fields are private except data. */
struct grpc_server {
    void *data; /* the user's */
    uv_loop_t *loop;
    struct gateway_backend *backend; /* borrowed until close_cb */
    struct grpc_server_options opts;
    uv_tcp_t listener;
    bool listening;   /* listener initialized (needs uv_close) */
    uv_prepare_t flusher; /* writes answers gathered during a loop turn */
    bool flusher_init;    /* flusher initialized (needs uv_close) */
    bool flusher_active;
    bool closing;     /* grpc_server_close() called */
    uint32_t conn_count;
    uint32_t handle_count; /* open uv handles (listener, conns' handles) */
    struct grpc_conn *conns; /* doubly linked list of open connections */
    grpc_server_close_cb close_cb;
    uint64_t calls_started; /* counters, for tests and metrics */
    uint64_t calls_cancelled;
    uint64_t calls_expired;
    uint64_t conns_rejected;
    char errmsg[256];
};

/* Initializes srv on loop with opts (NULL: defaults) answering calls
 * through backend (borrowed until close_cb). Opens no handle. Returns 0,
 * or GRPC_E_INVALID for bad options (srv->errmsg says which). Clears srv:
 * set srv->data after it. After a successful init, grpc_server_close()
 * must be called (with nothing open, close_cb runs before it returns). */
int grpc_server_init(uv_loop_t *loop, struct grpc_server *srv,
                     const struct grpc_server_options *opts,
                     struct gateway_backend *backend);

/* Listens on host (an IPv4 or IPv6 literal) and port (0: ephemeral; read
 * it with grpc_server_port). Returns 0, GRPC_E_INVALID for a bad address,
 * GRPC_E_STATE if already listening or closing, GRPC_E_IO if bind or
 * listen fail (srv->errmsg says why). */
int grpc_server_start(struct grpc_server *srv, const char *host,
                      uint16_t port);

/* The bound TCP port, or 0 when not listening. */
uint16_t grpc_server_port(const struct grpc_server *srv);

/* Stops listening, closes every connection (cancelling their backend
 * calls), and calls close_cb (may be NULL) once every handle is closed;
 * srv's memory may be released from then on. */
void grpc_server_close(struct grpc_server *srv, grpc_server_close_cb close_cb);

/* ---- Streams: the response side, used by the backend completion and
 * by the send callback of server-streaming backend calls. ---- */

/* Queues one response message (packed here; msg borrowed during the call)
 * on stream. Returns 0; GRPC_E_INVALID if msg is not the method's output
 * type; GRPC_E_BUSY if the stream's queue is over stream_queue_bytes_max
 * (retry after more is sent); GRPC_E_STATE if the stream already finished
 * or the method is unary and a message was already sent; GRPC_E_NOMEM. */
int grpc_stream_send(struct grpc_stream *stream, const ProtobufCMessage *msg);

/* Ends the call with a gRPC status and message (NULL or "" for none): sent
 * as trailers after the queued messages, or as a trailers-only response
 * when none were sent. An OK unary call must have sent its message.
 * Returns 0 or GRPC_E_STATE when already finished. */
int grpc_stream_finish(struct grpc_stream *stream, int status,
                       const char *message);

/* ---- Internal, for tests and the fuzz target: a connection with no
 * socket, fed bytes directly; its output is counted and discarded. ---- */

/* Opens a socket-less connection on srv. Returns 0 and *conn, or
 * GRPC_E_BUSY (connections_max), GRPC_E_STATE (closing), GRPC_E_NOMEM. */
int grpc__conn_open_detached(struct grpc_server *srv, struct grpc_conn **conn);

/* Feeds len bytes of client input into conn and runs the session (output
 * is produced and discarded). Returns 0, or GRPC_E_PROTOCOL once the
 * session has ended (the connection is then closing: do not feed again). */
int grpc__conn_feed(struct grpc_conn *conn, const uint8_t *data, size_t len);

/* Closes conn (cancelling its calls); its memory goes once its handles
 * are closed (run the loop). */
void grpc__conn_close(struct grpc_conn *conn);

/* ---- The method table (grpc_service.c). ---- */

struct grpc_method {
    const char *name;                          /* "Topology" */
    const ProtobufCMessageDescriptor *input;   /* request type */
    const ProtobufCMessageDescriptor *output;  /* response (message) type */
    bool server_streaming;                     /* response is a stream */
};

enum grpc_lookup {
    GRPC_LOOKUP_FOUND = 0,
    GRPC_LOOKUP_NO_SERVICE = 1, /* path names another service */
    GRPC_LOOKUP_NO_METHOD = 2,  /* our service, unknown method */
    GRPC_LOOKUP_BAD_PATH = 3,   /* not "/<service>/<method>" */
};

/* Finds the method of an HTTP/2 :path ("/gateway_protocol.Gateway/X",
 * not NUL-terminated). Returns the method or NULL, and *why. */
const struct grpc_method *grpc_service_method_find(const char *path,
                                                   size_t path_len,
                                                   enum grpc_lookup *why);

/* The number of methods and the method at index (< count). */
size_t grpc_service_method_count(void);
const struct grpc_method *grpc_service_method_at(size_t index);

/* ---- Internal: shared by grpc_server.c (sockets, timers, output) and
 * grpc_session.c (nghttp2 callbacks, gRPC calls). Not for other files. */

#include <nghttp2/nghttp2.h>

#define GRPC_READ_BYTES 16384u   /* one uv_read buffer per connection */
#define GRPC_PATH_BYTES_MAX 256u /* a longer :path is an unknown method */

/* One HTTP/2 connection. Its memory goes when both handles are closed. */
struct grpc_conn {
    struct grpc_server *srv;
    struct grpc_conn *prev, *next; /* in srv->conns while not closing */
    uv_tcp_t tcp;                  /* when attached */
    uv_timer_t timer;              /* the earliest call deadline */
    bool attached;                 /* has a socket (tcp initialized) */
    bool closing;                  /* conn_close() ran: no more I/O */
    bool reading;                  /* uv_read_start is in effect */
    bool flush_deferred;           /* grpc__conn_flush_later() pending */
    uint32_t depth;                /* > 0 inside nghttp2 or a scan */
    uint32_t handles_open;         /* tcp and timer not yet closed */
    uint64_t timer_due_ms;         /* when the timer fires; 0: stopped */
    nghttp2_session *session;      /* NULL once closing */
    struct grpc_stream *streams;   /* doubly linked, this conn's calls */
    uint32_t stream_count;         /* <= opts.streams_max */
    size_t request_bytes;          /* buffered request bytes, all streams */
    size_t output_bytes;           /* handed to uv_write, not yet done */
    uint64_t output_total;         /* bytes produced (detached: dropped) */
    uint8_t read_buf[GRPC_READ_BYTES];
};

/* grpc_session.c: sets up conn->session (server preface and SETTINGS
 * queued). Returns 0 or GRPC_E_NOMEM. */
int grpc__session_init(struct grpc_conn *conn);

/* grpc_session.c: frees every stream of conn, cancelling backend calls,
 * and deletes the session. */
void grpc__session_close(struct grpc_conn *conn);

/* grpc_session.c: answers DEADLINE_EXCEEDED for every call whose deadline
 * is <= now_ms and cancels its backend call. Returns the earliest
 * remaining deadline, or 0 for none. */
uint64_t grpc__session_expire(struct grpc_conn *conn, uint64_t now_ms);

/* grpc_server.c: pulls output from the session and writes it, within
 * output_bytes_max; closes conn when the session is over. A no-op while
 * conn->depth > 0 (the outer caller flushes). */
void grpc__conn_flush(struct grpc_conn *conn);
/* Like grpc__conn_flush(), but once per loop iteration: the answers the
 * backend completes during a turn leave in one write per connection
 * (flushed right before the loop would block). Detached connections and a
 * closing server flush at once. */
void grpc__conn_flush_later(struct grpc_conn *conn);

/* grpc_server.c: makes the conn's timer fire no later than deadline_ms. */
void grpc__conn_timer_arm(struct grpc_conn *conn, uint64_t deadline_ms);

#endif /* TANDEM_GATEWAY_GRPC_SERVER_H */
