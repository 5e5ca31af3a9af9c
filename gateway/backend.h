/* backend.h: the seam between the gateway's gRPC service and whatever
 * answers its calls (private to gateway/).
 *
 * Data flow of a unary call:
 *
 *   zbctl --HTTP/2--> grpc server (nghttp2) --decoded request-->
 *     backend->call(rpc, request, deadline, cb, req_data)
 *       --> broker client: routes to the partition leader over the
 *           brokers' command API, retries on leader change
 *     <-- cb(req_data, status, message, response)   exactly once
 *   grpc server --packs response, grpc-status trailers--> zbctl
 *
 * Data flow of a server-streaming call (ActivateJobs,
 * StreamActivatedJobs), when the backend offers call_stream:
 *
 *   grpc server --> backend->call_stream(rpc, request, deadline, send, cb,
 *                                        req_data)
 *     <-- send(req_data, message)   any number of times: one stream
 *                                   message each (DATA frames)
 *     <-- cb(req_data, status, message, NULL)   exactly once: trailers
 *   backend->cancel(req_data) when the client resets the stream, the
 *   connection drops or the deadline passes: no send or cb after it.
 *
 * Requests and responses are the protobuf-c structs generated from
 * proto/gateway.proto (package gateway_protocol), passed as
 * ProtobufCMessage pointers whose descriptor names the message type.
 *
 * Status codes are gRPC's (0 OK, 1 CANCELLED, 3 INVALID_ARGUMENT,
 * 4 DEADLINE_EXCEEDED, 5 NOT_FOUND, 6 ALREADY_EXISTS, 8
 * RESOURCE_EXHAUSTED, 9 FAILED_PRECONDITION, 12 UNIMPLEMENTED, 13
 * INTERNAL, 14 UNAVAILABLE). */
#ifndef TANDEM_GATEWAY_BACKEND_H
#define TANDEM_GATEWAY_BACKEND_H

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

enum gateway_status {
    GATEWAY_STATUS_OK = 0,
    GATEWAY_STATUS_CANCELLED = 1,
    GATEWAY_STATUS_UNKNOWN = 2,
    GATEWAY_STATUS_INVALID_ARGUMENT = 3,
    GATEWAY_STATUS_DEADLINE_EXCEEDED = 4,
    GATEWAY_STATUS_NOT_FOUND = 5,
    GATEWAY_STATUS_ALREADY_EXISTS = 6,
    GATEWAY_STATUS_PERMISSION_DENIED = 7,
    GATEWAY_STATUS_RESOURCE_EXHAUSTED = 8,
    GATEWAY_STATUS_FAILED_PRECONDITION = 9,
    GATEWAY_STATUS_ABORTED = 10,
    GATEWAY_STATUS_OUT_OF_RANGE = 11,
    GATEWAY_STATUS_UNIMPLEMENTED = 12,
    GATEWAY_STATUS_INTERNAL = 13,
    GATEWAY_STATUS_UNAVAILABLE = 14,
};

/* Completion of one call. status is an enum gateway_status; message is a
 * human-readable reason (NULL or "" for OK); response is the reply (NULL
 * unless status is OK), borrowed: valid only during the callback, the
 * server packs it before returning. */
typedef void (*gateway_backend_cb)(void *req_data, int status,
                                   const char *message,
                                   const ProtobufCMessage *response);

/* Errors of gateway_backend_send_cb (negative). */
#define GATEWAY_BACKEND_E_BUSY (-1) /* the stream holds too many unsent
                                       bytes: msg was not queued */
#define GATEWAY_BACKEND_E_GONE (-2) /* the stream takes no more messages */

/* One message of a server-streaming call. msg is borrowed for the call
 * (packed before it returns); msg NULL only asks how full the stream is.
 * Returns the response bytes queued on the stream and not yet taken by
 * HTTP/2 (after queuing msg; >= 0), GATEWAY_BACKEND_E_BUSY or
 * GATEWAY_BACKEND_E_GONE. Never calls back into the backend. */
typedef int64_t (*gateway_backend_send_cb)(void *req_data,
                                           const ProtobufCMessage *msg);

struct gateway_backend {
    /* Starts one call. rpc is the method name as in the service
     * ("Topology", "PublishMessage", ...); request is the decoded request
     * (borrowed until cb runs or cancel returns); deadline_ms is the
     * absolute time (uv_now() of the gateway's loop) after which the call
     * must complete with DEADLINE_EXCEEDED, or 0 for none. Returns 0, and
     * then cb runs exactly once (possibly before call returns, for answers
     * from a local cache), unless cancel() is called first. Returns a
     * negative value only for a programming error; every operational
     * failure (unknown rpc: UNIMPLEMENTED, no leader, overload, bad
     * request) is reported through cb. */
    int (*call)(struct gateway_backend *backend, const char *rpc,
                const ProtobufCMessage *request, uint64_t deadline_ms,
                gateway_backend_cb cb, void *req_data);
    /* Starts a server-streaming call: as call(), and send(req_data, msg)
     * may run any number of times before cb, which ends the stream once
     * (response NULL; OK ends it normally). NULL when the backend has no
     * streaming calls: the server then uses call() and streams the one
     * response message it answers with. */
    int (*call_stream)(struct gateway_backend *backend, const char *rpc,
                       const ProtobufCMessage *request, uint64_t deadline_ms,
                       gateway_backend_send_cb send, gateway_backend_cb cb,
                       void *req_data);
    /* The client went away (stream reset, connection lost, deadline): cb
     * and send must not run for req_data any more. The backend may still
     * finish the underlying broker request. */
    void (*cancel)(struct gateway_backend *backend, void *req_data);
    void *data;
};

#endif /* TANDEM_GATEWAY_BACKEND_H */
