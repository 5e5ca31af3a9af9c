/* command_api.h: the broker's command API server (port 26501), where
 * gateways send tandem.command.Request frames (proto/command.proto) and get
 * Response frames back (private to broker/).
 *
 * Data flow:
 *
 *   gateway --TCP--> connection --proto_frame splitter--> Request
 *     --handler->request(conn_id, request)--> broker (answers at once, or
 *       later when the partition applied the entry)
 *   broker --command_api_respond(conn_id, response)--> packed frame
 *     --uv_write--> gateway
 *
 * Connections are identified by a 64-bit id that is never reused, so an
 * answer for a connection that closed meanwhile is dropped harmlessly.
 * Bounded: connections_max connections, write_bytes_max unsent bytes per
 * connection (a gateway that stops reading is disconnected), and
 * frame_bytes_max per frame (a larger one closes the connection).
 */
#ifndef TANDEM_BROKER_COMMAND_API_H
#define TANDEM_BROKER_COMMAND_API_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proto/proto.h"

struct command_api;

struct command_api_options {
    const char *host;
    uint16_t port;            /* 0 = ephemeral */
    uint32_t connections_max; /* default 256 */
    size_t write_bytes_max;   /* default 64 MiB */
    size_t frame_bytes_max;   /* default PROTO_COMMAND_FRAME_BYTES_DEFAULT */
};

struct command_api_handler {
    /* A request arrived. req is borrowed for the call; answer it (now or
     * later) with command_api_respond(conn_id, ...). */
    void (*request)(void *data, uint64_t conn_id,
                    const Tandem__Command__Request *req);
    void *data;
};

/* Creates the server on loop. Returns 0 or a negative libuv error. */
int command_api_init(uv_loop_t *loop, struct command_api **out,
                     const struct command_api_options *opts,
                     const struct command_api_handler *handler);

/* Binds and listens. Returns 0 or a negative libuv error (errmsg filled). */
int command_api_start(struct command_api *api, char *errmsg, size_t len);

/* The port actually bound (useful with port 0). */
int command_api_port(const struct command_api *api);

/* Sends a response on connection conn_id, if it is still open. Returns 0,
 * or a negative error when the connection is gone or the frame could not
 * be packed (the response is dropped). */
int command_api_respond(struct command_api *api, uint64_t conn_id,
                        const Tandem__Command__Response *resp);

/* Sends Error{code, message} for request id on conn_id. */
int command_api_respond_error(struct command_api *api, uint64_t conn_id,
                              uint64_t id, Tandem__Command__Code code,
                              uint32_t leader_hint, const char *message);

/* Closes every connection and the listener; cb runs when all handles are
 * closed, after which the memory is released. */
void command_api_close(struct command_api *api,
                       void (*cb)(void *data), void *data);

#endif /* TANDEM_BROKER_COMMAND_API_H */
