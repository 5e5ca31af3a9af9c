/* backend.h: the seam between the gateway's gRPC service and whatever
 * answers its calls (private to gateway/).
 *
 * Data flow:
 *
 *   zbctl --HTTP/2--> grpc server (nghttp2) --decoded request-->
 *     backend->call(rpc, request, deadline, cb, req_data)
 *       --> broker client: routes to the partition leader over the
 *           brokers' command API, retries on leader change
 *     <-- cb(req_data, status, message, response)   exactly once
 *   grpc server --packs response, grpc-status trailers--> zbctl
 *
 * Requests and responses are the protobuf-c structs generated from
 * proto/gateway.proto (package gateway_protocol), passed as
 * ProtobufCMessage pointers whose descriptor names the message type.
 *
 * Status codes are gRPC's (0 OK, 3 INVALID_ARGUMENT, 4 DEADLINE_EXCEEDED,
 * 5 NOT_FOUND, 6 ALREADY_EXISTS, 8 RESOURCE_EXHAUSTED, 12 UNIMPLEMENTED,
 * 13 INTERNAL, 14 UNAVAILABLE). */
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
    /* The client went away (stream reset): cb must not run for req_data.
     * The backend may still finish the underlying broker request. */
    void (*cancel)(struct gateway_backend *backend, void *req_data);
    void *data;
};

#endif /* TANDEM_GATEWAY_BACKEND_H */
