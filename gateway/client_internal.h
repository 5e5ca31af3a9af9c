/* client_internal.h: what the broker client's files share (private to
 * client.c, client_rpc.c and client_jobs.c; nothing else includes it).
 *
 * Data flow between them:
 *
 *   backend->call(rpc) (client.c) --> client__rpc_find() (client_rpc.c):
 *     the rpc's validation, command body and routing --> a
 *     struct client_call_spec --> client__call_start() (client.c): the
 *     call is copied, routed to a partition leader, retried, answered
 *   backend->call_stream(rpc) (client.c) --> client__jobs_start()
 *     (client_jobs.c): job activation rounds and long polling, built from
 *     internal calls (client__call_start with once = true) whose answers
 *     come back to client_jobs.c through gateway_backend_cb
 *
 * Every function runs on the client's loop; callbacks follow client.c's
 * rule: no client state is half-updated when one runs. */
#ifndef TANDEM_GATEWAY_CLIENT_INTERNAL_H
#define TANDEM_GATEWAY_CLIENT_INTERNAL_H

#include "gateway/client.h"

/* Partition keys: key = (partition << 51) + local (Zeebe's Protocol). */
#define CLIENT_KEY_PARTITION_SHIFT 51u

/* Extra time a call waits beyond the time it gives the broker
 * (Request.timeout_ms), so that the broker's own DEADLINE_EXCEEDED or
 * "nothing available" answer still arrives. */
#define CLIENT_BROKER_SLACK_MS 1000u

/* How a call chooses its partition. */
enum client_route {
    CLIENT_ROUTE_FIXED = 0,   /* spec.partition_id */
    CLIENT_ROUTE_CORRELATION, /* Zeebe's hash of the PublishMessage
                                 correlation key (needs the topology) */
    CLIENT_ROUTE_KEY,         /* spec.key >> 51 */
    CLIENT_ROUTE_ROUND_ROBIN, /* each partition with a leader in turn */
};

/* Converts a successful answer into the rpc's response and runs
 * cb(req_data, ...) exactly once (DeployProcess's answer is built from
 * DeployResource's). */
typedef void (*client_answer_convert_fn)(const ProtobufCMessage *answer,
                                         gateway_backend_cb cb, void *req_data);

/* What client__call_start needs. */
struct client_call_spec {
    Tandem__Command__Request__BodyCase body_case; /* the command */
    const ProtobufCMessage *body; /* its message, borrowed: copied */
    enum client_route route;
    uint32_t partition_id;            /* CLIENT_ROUTE_FIXED: >= 1 */
    int64_t key;                      /* CLIENT_ROUTE_KEY */
    uint64_t deadline_ms;             /* absolute (uv_now); 0: now + the
                                         request timeout */
    uint64_t broker_timeout_ms;       /* Request.timeout_ms; 0: time left */
    bool once;                        /* one attempt, no retry: any failure
                                         ends the call (job activation) */
    client_answer_convert_fn convert; /* NULL: the answer as is */
};

/* One call in flight (client.c). */
struct client_call {
    struct client_call *prev, *next; /* in client->calls */
    gateway_backend_cb cb;
    void *req_data;
    Tandem__Command__Request__BodyCase body_case;
    ProtobufCMessage *body; /* owned copy of the command message */
    client_answer_convert_fn convert;
    enum client_route route;
    int64_t key;                /* CLIENT_ROUTE_KEY */
    uint32_t partition_id;      /* 0 until chosen */
    uint32_t rr_tried;          /* round robin: partitions given up */
    uint32_t rr_count;          /* round robin: partitions to try */
    uint64_t deadline_ms;       /* absolute, uv_now() */
    uint64_t retry_at_ms;       /* 0: not waiting for a retry */
    uint64_t broker_timeout_ms; /* 0: time left */
    bool once;
    int fail_status; /* != 0: finish with it at retry_at */
    uint32_t attempts;
    int64_t hint_node;            /* leader hint from NOT_LEADER, or -1 */
    struct client_broker *broker; /* where the attempt is pending */
    uint64_t request_id;          /* its Request.id */
    char last_error[224];         /* why the last attempt failed */
};

/* ---- client.c ---- */

/* Starts a call: cb runs exactly once, unless the call cannot start:
 * then cb is not run and a gRPC status is returned (RESOURCE_EXHAUSTED at
 * calls_max or out of memory, UNAVAILABLE when closing). A once-only call
 * never runs cb before this returns and reports itself in *out (may be
 * NULL) until then; other calls may complete inside (out must be NULL).
 * Returns 0 on success. */
int client__call_start(struct gateway_client *c,
                       const struct client_call_spec *spec,
                       gateway_backend_cb cb, void *req_data,
                       struct client_call **out);

/* Forgets a call in flight: its cb never runs. */
void client__call_cancel(struct gateway_client *c, struct client_call *call);

/* The configured number of partitions as currently known (0: none). */
uint32_t client__partitions_count(struct gateway_client *c);

/* Whether a leader of partition_id is known. */
bool client__leader_known(struct gateway_client *c, uint32_t partition_id);

/* Re-arms the client's jobs timer (client_jobs.c asks after changes). */
void client__jobs_timer_arm(struct gateway_client *c, uint64_t due_ms);

/* A deep copy of m (pack + unpack with its descriptor), or NULL when out
 * of memory. Free with protobuf_c_message_free_unpacked(copy, NULL). */
ProtobufCMessage *client__message_copy(const ProtobufCMessage *m);

/* ---- client_rpc.c ---- */

/* Maps a broker's error code to a gRPC status (zeebe-facts 3.4). */
int client__error_status(Tandem__Command__Code code);

/* Sets req's body oneof to body (borrowed). */
void client__request_body_set(Tandem__Command__Request *req,
                              Tandem__Command__Request__BodyCase body_case,
                              ProtobufCMessage *body);

/* The answer of a successful response when it is the one body_case
 * expects, else NULL. */
const ProtobufCMessage *
client__response_answer(const Tandem__Command__Response *resp,
                        Tandem__Command__Request__BodyCase body_case);

/* A JSON variables document check as Zeebe's gateway makes it: "" or a
 * JSON object. Returns true, or false with the reason in why. */
bool client__variables_valid(const char *name, const char *json, char *why,
                             size_t why_size);

/* Runs a unary command rpc: validates request, builds the spec and starts
 * the call (or answers cb at once with the validation error). Returns
 * false when rpc is not a command rpc handled here. */
bool client__rpc_call(struct gateway_client *c, const char *rpc,
                      const ProtobufCMessage *request, uint64_t deadline_ms,
                      gateway_backend_cb cb, void *req_data);

/* ---- client_jobs.c ---- */

/* Starts an ActivateJobs or StreamActivatedJobs call (backend.h
 * call_stream contract). Returns false when rpc is neither. */
bool client__jobs_call(struct gateway_client *c, const char *rpc,
                       const ProtobufCMessage *request, uint64_t deadline_ms,
                       gateway_backend_send_cb send, gateway_backend_cb cb,
                       void *req_data);

/* Cancels the jobs call of req_data (the server let go). Returns false
 * when there is none. */
bool client__jobs_cancel(struct gateway_client *c, void *req_data);

/* The jobs timer fired: deadlines, probes and paused streams. */
void client__jobs_timer_cb(struct gateway_client *c);

/* Ends every jobs call with UNAVAILABLE (the client is closing). */
void client__jobs_close(struct gateway_client *c);

#endif /* TANDEM_GATEWAY_CLIENT_INTERNAL_H */
