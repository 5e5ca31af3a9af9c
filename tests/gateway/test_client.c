/* test_client.c: tests of gateway/client.c against fake brokers
 * (test_client_fake.h) on 127.0.0.1: topology discovery and merging,
 * leader routing, retries on NOT_LEADER and on lost connections,
 * deadlines, bounds (RESOURCE_EXHAUSTED), error mapping, cancel, close;
 * and the command RPCs: routing to partition 1, round
 * robin, key routing, validation, DeployProcess conversion, job
 * activation fan-out, long polling, job streams and cancellation.
 *
 * Timings are shrunk (refresh 20 ms, stale 80 ms) so every test runs in
 * well under a second; every wait is bounded by run_until(). */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/client_internal.h"
#include "tests/gateway/test_client_fake.h"

#define NODES 3u

struct result {
    bool done;
    int status;
    char message[256];
    int64_t key;
    uint32_t count; /* completions seen */
};

struct fixture {
    uv_loop_t loop;
    struct fake_broker fakes[NODES];
    struct fake_broker *cluster[NODES];
    struct gateway_client client;
    struct gateway_client_options opts;
    char addr[NODES][32];
    const char *contact[NODES];
    bool client_closed;
};

static void result_cb(void *req_data, int status, const char *message,
                      const ProtobufCMessage *response)
{
    struct result *r = req_data;

    r->done = true;
    r->count++;
    r->status = status;
    snprintf(r->message, sizeof(r->message), "%s",
             message != NULL ? message : "");
    if (status == GATEWAY_STATUS_OK && response != NULL &&
        response->descriptor ==
            &gateway_protocol__publish_message_response__descriptor) {
        r->key = ((const GatewayProtocol__PublishMessageResponse *)response)
                     ->key;
    }
}

static bool result_done(void *arg)
{
    return ((struct result *)arg)->done;
}

/* 3 fakes, 3 partitions, RF 3; node i leads partition i + 1. */
static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    uint32_t i, p;

    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    for (i = 0; i < NODES; i++) {
        fake_broker_init(&fx->loop, &fx->fakes[i], i);
        fx->cluster[i] = &fx->fakes[i];
    }
    for (i = 0; i < NODES; i++) {
        struct fake_broker *f = &fx->fakes[i];
        f->cluster = fx->cluster;
        f->cluster_count = NODES;
        f->cluster_size = NODES;
        f->partitions_count = NODES;
        f->replication_factor = NODES;
        for (p = 1; p <= NODES; p++) {
            fake_broker_partition(f, p,
                                  p == i + 1 ? TANDEM__COMMAND__ROLE__LEADER
                                             : TANDEM__COMMAND__ROLE__FOLLOWER,
                                  1);
        }
        fake_broker_address(f, fx->addr[i]);
        fx->contact[i] = fx->addr[i];
    }
    gateway_client_options_default(&fx->opts);
    fx->opts.contact_points = fx->contact;
    fx->opts.contact_point_count = 1; /* others are discovered */
    fx->opts.topology_refresh_ms = 20;
    fx->opts.topology_stale_ms = 80;
    fx->opts.reconnect_ms_min = 10;
    fx->opts.reconnect_ms_max = 40;
    fx->opts.request_timeout_ms = 2000;
    *state = fx;
    return 0;
}

static void client_closed_cb(struct gateway_client *client)
{
    struct fixture *fx = client->data;
    fx->client_closed = true;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    uint32_t i;

    if (fx->client.loop != NULL) {
        fx->client.data = fx;
        gateway_client_close(&fx->client, client_closed_cb);
    }
    for (i = 0; i < NODES; i++) {
        fake_broker_close(&fx->fakes[i]);
    }
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    if (fx->client.loop != NULL) {
        assert_true(fx->client_closed);
    }
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

static void client_start(struct fixture *fx)
{
    assert_int_equal(gateway_client_init(&fx->loop, &fx->client, &fx->opts),
                     0);
    assert_int_equal(gateway_client_start(&fx->client), 0);
    assert_int_equal(gateway_client_start(&fx->client),
                     GATEWAY_CLIENT_E_STATE);
}

/* All NODES brokers fresh, each with NODES partitions listed. */
static bool topology_complete(void *arg)
{
    struct fixture *fx = arg;
    const GatewayProtocol__TopologyResponse *t =
        gateway_client_topology(&fx->client);
    size_t i;

    if (t->n_brokers != NODES) {
        return false;
    }
    for (i = 0; i < t->n_brokers; i++) {
        if (t->brokers[i]->n_partitions != NODES) {
            return false;
        }
    }
    return true;
}

static void publish(struct fixture *fx, const char *key, uint64_t deadline,
                    struct result *r)
{
    GatewayProtocol__PublishMessageRequest req =
        GATEWAY_PROTOCOL__PUBLISH_MESSAGE_REQUEST__INIT;
    struct gateway_backend *be = gateway_client_backend(&fx->client);

    req.name = "msg";
    req.correlationkey = (char *)(uintptr_t)key;
    req.timetolive = 1000;
    memset(r, 0, sizeof(*r));
    assert_int_equal(be->call(be, "PublishMessage", &req.base, deadline,
                              result_cb, r),
                     0);
}

/* ---- tests ---- */

static void partition_of_key_matches_zeebe(void **state)
{
    (void)state;
    /* Expected values computed with Java's int arithmetic over signed
     * UTF-8 bytes (SubscriptionUtil). */
    assert_int_equal(gateway_client_partition_of_key("order-42", 3), 1);
    assert_int_equal(gateway_client_partition_of_key("", 3), 1);
    assert_int_equal(gateway_client_partition_of_key("a", 3), 2);
    assert_int_equal(gateway_client_partition_of_key("a", 7), 7);
    assert_int_equal(
        gateway_client_partition_of_key("correlation-key-123", 3), 2);
    assert_int_equal(gateway_client_partition_of_key("gr\xc3\xb6\xc3\x9f" "e",
                                                     7),
                     6);
    assert_int_equal(gateway_client_partition_of_key("zzzzzzzzzzzzzzzz", 3),
                     3);
    assert_int_equal(gateway_client_partition_of_key("zzzzzzzzzzzzzzzz", 7),
                     2);
    assert_int_equal(gateway_client_partition_of_key("anything", 1), 1);
}

static void init_rejects_bad_options(void **state)
{
    struct fixture *fx = *state;
    struct gateway_client c;
    struct gateway_client_options o = fx->opts;
    const char *bad[] = {"no-port"};
    const char *bad2[] = {"host:99999"};

    o.contact_point_count = 0;
    assert_int_equal(gateway_client_init(&fx->loop, &c, &o),
                     GATEWAY_CLIENT_E_INVALID);
    o.contact_points = bad;
    o.contact_point_count = 1;
    assert_int_equal(gateway_client_init(&fx->loop, &c, &o),
                     GATEWAY_CLIENT_E_INVALID);
    assert_non_null(strstr(c.errmsg, "no-port"));
    o.contact_points = bad2;
    assert_int_equal(gateway_client_init(&fx->loop, &c, &o),
                     GATEWAY_CLIENT_E_INVALID);
    o = fx->opts;
    o.calls_max = 0;
    assert_int_equal(gateway_client_init(&fx->loop, &c, &o),
                     GATEWAY_CLIENT_E_INVALID);
}

static void topology_discovers_and_merges(void **state)
{
    struct fixture *fx = *state;
    const GatewayProtocol__TopologyResponse *t;
    struct gateway_backend *be;
    size_t i, k;

    t = NULL;
    client_start(fx);
    /* Before any answer: empty, still a valid response. */
    t = gateway_client_topology(&fx->client);
    assert_int_equal(t->n_brokers, 0);
    assert_int_equal(t->clustersize, 0);
    assert_string_equal(t->gatewayversion, "8.4.0");
    assert_true(run_until(&fx->loop, topology_complete, fx, 2000));
    t = gateway_client_topology(&fx->client);
    assert_int_equal(t->clustersize, 3);
    assert_int_equal(t->partitionscount, 3);
    assert_int_equal(t->replicationfactor, 3);
    for (i = 0; i < NODES; i++) {
        const GatewayProtocol__BrokerInfo *b = t->brokers[i];
        assert_int_equal(b->nodeid, (int32_t)i);
        assert_string_equal(b->host, "127.0.0.1");
        assert_int_equal(b->port, fx->fakes[i].port);
        assert_string_equal(b->version, "8.4.0-fake");
        for (k = 0; k < NODES; k++) {
            assert_int_equal(b->partitions[k]->partitionid, (int32_t)k + 1);
            assert_int_equal(
                b->partitions[k]->role,
                k == i ? GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_ROLE__LEADER
                       : GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_ROLE__FOLLOWER);
            assert_int_equal(
                b->partitions[k]->health,
                GATEWAY_PROTOCOL__PARTITION__PARTITION_BROKER_HEALTH__HEALTHY);
        }
    }
    for (i = 0; i < NODES; i++) {
        assert_int_equal(gateway_client_leader(&fx->client, (uint32_t)i + 1),
                         (int64_t)i);
    }
    assert_int_equal(gateway_client_leader(&fx->client, 9), -1);

    /* Two brokers claim partition 1: the higher term wins. */
    fake_broker_partition(&fx->fakes[2], 1, TANDEM__COMMAND__ROLE__LEADER, 5);
    run_for(&fx->loop, 100);
    assert_int_equal(gateway_client_leader(&fx->client, 1), 2);

    /* The backend's Topology rpc answers the same merge, synchronously. */
    be = gateway_client_backend(&fx->client);
    {
        struct result r;
        memset(&r, 0, sizeof(r));
        assert_int_equal(be->call(be, "Topology", NULL, 0, result_cb, &r), 0);
        assert_true(r.done);
        assert_int_equal(r.status, GATEWAY_STATUS_OK);
    }

    /* A broker that stops answering goes stale: listed without
     * partitions (others still name it as a member); no leader then. */
    fx->fakes[1].topology_silent = true;
    run_for(&fx->loop, 250);
    t = gateway_client_topology(&fx->client);
    assert_int_equal(t->n_brokers, 3);
    assert_int_equal(t->brokers[1]->n_partitions, 0);
    assert_int_equal(t->brokers[0]->n_partitions, 3);
    assert_int_equal(gateway_client_leader(&fx->client, 2), -1);
    /* Once no fresh broker names it alive either (killed, or removed
     * from the cluster), it is not listed at all, as in Zeebe. */
    fx->fakes[1].dead_to_others = true;
    run_for(&fx->loop, 250);
    t = gateway_client_topology(&fx->client);
    assert_int_equal(t->n_brokers, 2);
    assert_int_equal(t->brokers[0]->nodeid, 0);
    assert_int_equal(t->brokers[1]->nodeid, 2);
    fx->fakes[1].dead_to_others = false;
    fx->fakes[1].topology_silent = false;
    assert_true(run_until(&fx->loop, topology_complete, fx, 2000));
}

static void publish_routes_to_leader(void **state)
{
    struct fixture *fx = *state;
    struct result r;
    uint32_t p = gateway_client_partition_of_key("a", NODES); /* 2 */

    fx->opts.contact_point_count = NODES;
    client_start(fx);
    assert_true(run_until(&fx->loop, topology_complete, fx, 2000));
    publish(fx, "a", 0, &r);
    assert_true(run_until(&fx->loop, result_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_OK);
    assert_int_equal(p, 2);
    assert_int_equal(fx->fakes[1].publishes, 1);
    assert_int_equal(fx->fakes[1].last_partition, 2);
    assert_true(fx->fakes[1].last_timeout_ms > 0);
    assert_true(fx->fakes[1].last_timeout_ms <= 2000);
    assert_int_equal(fx->fakes[0].publishes + fx->fakes[2].publishes, 0);
    assert_int_equal(r.key >> 51, 2);
}

static void publish_retries_on_not_leader(void **state)
{
    struct fixture *fx = *state;
    struct result r;

    client_start(fx);
    assert_true(run_until(&fx->loop, topology_complete, fx, 2000));
    /* Node 1 claims partition 2 but answers NOT_LEADER pointing at node
     * 2, which answers. */
    fx->fakes[1].publish_mode = FAKE_PUBLISH_ERROR;
    fx->fakes[1].error_code = TANDEM__COMMAND__CODE__NOT_LEADER;
    fx->fakes[1].leader_hint = 2 + 1;
    publish(fx, "a", 0, &r);
    assert_true(run_until(&fx->loop, result_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_OK);
    assert_int_equal(fx->fakes[1].publishes, 1);
    assert_int_equal(fx->fakes[2].publishes, 1);
    assert_true(fx->client.stats.calls_retried >= 1);

    /* Without a hint, NOT_LEADER is retried until the topology moves. */
    fx->fakes[1].leader_hint = 0;
    publish(fx, "a", 0, &r);
    run_for(&fx->loop, 60);
    assert_false(r.done);
    assert_true(fx->fakes[1].publishes >= 3);
    fake_broker_partition(&fx->fakes[1], 2, TANDEM__COMMAND__ROLE__FOLLOWER, 2);
    fake_broker_partition(&fx->fakes[0], 2, TANDEM__COMMAND__ROLE__LEADER, 2);
    assert_true(run_until(&fx->loop, result_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_OK);
    assert_int_equal(fx->fakes[0].publishes, 1);
}

static void publish_retries_on_disconnect(void **state)
{
    struct fixture *fx = *state;
    struct result r;

    client_start(fx);
    assert_true(run_until(&fx->loop, topology_complete, fx, 2000));
    fx->fakes[1].drop_first = 2; /* two lost connections, then answers */
    publish(fx, "a", 0, &r);
    assert_true(run_until(&fx->loop, result_done, &r, 3000));
    assert_int_equal(r.status, GATEWAY_STATUS_OK);
    assert_int_equal(fx->fakes[1].publishes, 3);
    assert_true(fx->client.stats.disconnects >= 2);
    assert_true(fx->client.stats.connects >= 5);
}

static void publish_deadline_exceeded(void **state)
{
    struct fixture *fx = *state;
    struct result r;
    uint64_t start;

    client_start(fx);
    assert_true(run_until(&fx->loop, topology_complete, fx, 2000));
    /* The leader never answers: the call's deadline ends it. */
    fx->fakes[1].publish_mode = FAKE_PUBLISH_SILENT;
    start = uv_now(&fx->loop);
    publish(fx, "a", start + 150, &r);
    assert_true(run_until(&fx->loop, result_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_DEADLINE_EXCEEDED);
    assert_non_null(strstr(r.message, "Time out between gateway and broker"));
    assert_true(uv_now(&fx->loop) - start >= 150);
    assert_true(uv_now(&fx->loop) - start < 1000);

    /* No leader at all for the partition: retried, then the deadline. */
    fake_broker_partition(&fx->fakes[1], 2, TANDEM__COMMAND__ROLE__FOLLOWER, 1);
    run_for(&fx->loop, 60);
    start = uv_now(&fx->loop);
    publish(fx, "a", start + 100, &r);
    assert_true(run_until(&fx->loop, result_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_DEADLINE_EXCEEDED);
    assert_non_null(strstr(r.message, "no leader known for partition 2"));

    /* A deadline already past fails at once. */
    publish(fx, "a", 1, &r);
    assert_true(r.done);
    assert_int_equal(r.status, GATEWAY_STATUS_DEADLINE_EXCEEDED);
}

static void publish_without_topology_is_unavailable(void **state)
{
    struct fixture *fx = *state;
    struct result r;

    /* Nobody answers topology requests. */
    fx->fakes[0].topology_silent = true;
    fx->opts.request_timeout_ms = 100;
    client_start(fx);
    publish(fx, "a", 0, &r);
    assert_true(run_until(&fx->loop, result_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_UNAVAILABLE);
    assert_non_null(strstr(r.message, "No topology"));
}

static void overload_is_resource_exhausted(void **state)
{
    struct fixture *fx = *state;
    struct result r[5];
    int i;

    fx->opts.connection_requests_max = 2;
    fx->opts.calls_max = 3;
    client_start(fx);
    assert_true(run_until(&fx->loop, topology_complete, fx, 2000));
    fx->fakes[1].publish_mode = FAKE_PUBLISH_SILENT;
    publish(fx, "a", 0, &r[0]);
    publish(fx, "a", 0, &r[1]);
    /* The connection to node 1 holds 2 unanswered requests. */
    publish(fx, "a", 0, &r[2]);
    assert_true(r[2].done);
    assert_int_equal(r[2].status, GATEWAY_STATUS_RESOURCE_EXHAUSTED);
    /* Partition 1 (node 0) still has room; then the gateway-wide bound. */
    publish(fx, "order-42", 0, &r[3]);
    assert_false(r[3].done);
    publish(fx, "order-42", 0, &r[4]);
    assert_true(r[4].done);
    assert_int_equal(r[4].status, GATEWAY_STATUS_RESOURCE_EXHAUSTED);
    assert_true(run_until(&fx->loop, result_done, &r[3], 2000));
    assert_int_equal(r[3].status, GATEWAY_STATUS_OK);
    assert_int_equal(fx->client.stats.calls_rejected, 2);
    /* Cancelled calls never complete; their slots free up on answer or
     * disconnect. */
    gateway_client_backend(&fx->client)
        ->cancel(gateway_client_backend(&fx->client), &r[0]);
    gateway_client_backend(&fx->client)
        ->cancel(gateway_client_backend(&fx->client), &r[1]);
    run_for(&fx->loop, 50);
    for (i = 0; i < 2; i++) {
        assert_false(r[i].done);
    }
    assert_int_equal(fx->client.call_count, 0);
}

static void broker_errors_are_mapped(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        Tandem__Command__Code code;
        int status;
    } map[] = {
        {TANDEM__COMMAND__CODE__RESOURCE_EXHAUSTED,
         GATEWAY_STATUS_RESOURCE_EXHAUSTED},
        {TANDEM__COMMAND__CODE__INVALID_ARGUMENT,
         GATEWAY_STATUS_INVALID_ARGUMENT},
        {TANDEM__COMMAND__CODE__DEADLINE_EXCEEDED,
         GATEWAY_STATUS_DEADLINE_EXCEEDED},
        {TANDEM__COMMAND__CODE__ALREADY_EXISTS, GATEWAY_STATUS_ALREADY_EXISTS},
        {TANDEM__COMMAND__CODE__NOT_FOUND, GATEWAY_STATUS_NOT_FOUND},
        {TANDEM__COMMAND__CODE__FAILED_PRECONDITION,
         GATEWAY_STATUS_FAILED_PRECONDITION},
        {TANDEM__COMMAND__CODE__UNIMPLEMENTED, GATEWAY_STATUS_UNIMPLEMENTED},
        {TANDEM__COMMAND__CODE__INTERNAL, GATEWAY_STATUS_INTERNAL},
        {(Tandem__Command__Code)42, GATEWAY_STATUS_INTERNAL},
    };
    size_t i;

    client_start(fx);
    assert_true(run_until(&fx->loop, topology_complete, fx, 2000));
    fx->fakes[1].publish_mode = FAKE_PUBLISH_ERROR;
    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        struct result r;
        fx->fakes[1].error_code = map[i].code;
        publish(fx, "a", 0, &r);
        assert_true(run_until(&fx->loop, result_done, &r, 2000));
        assert_int_equal(r.status, map[i].status);
        if (map[i].status == GATEWAY_STATUS_INTERNAL) {
            assert_non_null(strstr(r.message, "Unexpected error"));
        } else {
            assert_string_equal(r.message, "fake error");
        }
    }
}

static void other_rpcs_and_close(void **state)
{
    struct fixture *fx = *state;
    struct gateway_backend *be;
    struct result r, pending;

    client_start(fx);
    be = gateway_client_backend(&fx->client);
    memset(&r, 0, sizeof(r));
    {
        GatewayProtocol__EvaluateDecisionRequest ed =
            GATEWAY_PROTOCOL__EVALUATE_DECISION_REQUEST__INIT;
        assert_int_equal(be->call(be, "EvaluateDecision", &ed.base, 0,
                                  result_cb, &r),
                         0);
    }
    assert_true(r.done);
    assert_int_equal(r.status, GATEWAY_STATUS_UNIMPLEMENTED);
    assert_string_equal(r.message, "EvaluateDecision is not implemented yet");
    assert_true(run_until(&fx->loop, topology_complete, fx, 2000));
    /* A call in flight at close completes UNAVAILABLE. */
    fx->fakes[1].publish_mode = FAKE_PUBLISH_SILENT;
    publish(fx, "a", 0, &pending);
    run_for(&fx->loop, 20);
    assert_false(pending.done);
    fx->client.data = fx;
    gateway_client_close(&fx->client, client_closed_cb);
    assert_true(pending.done);
    assert_int_equal(pending.status, GATEWAY_STATUS_UNAVAILABLE);
    assert_int_equal(pending.count, 1);
    /* While closing, calls are refused through cb. */
    publish(fx, "a", 0, &r);
    assert_true(r.done);
    assert_int_equal(r.status, GATEWAY_STATUS_UNAVAILABLE);
}

/* ---- command RPCs ---- */

/* A stream call's outcome: its messages and jobs. */
struct sresult {
    bool done;
    int status;
    char message[512];
    uint32_t messages;
    uint32_t jobs;
    int64_t keys[64];
    int64_t busy_after; /* >= 0: refuse messages after this many */
};

static int64_t sresult_send(void *req_data, const ProtobufCMessage *msg)
{
    struct sresult *r = req_data;

    assert_false(r->done);
    if (msg == NULL) {
        return 0;
    }
    if (r->busy_after >= 0 && r->messages >= (uint64_t)r->busy_after) {
        return GATEWAY_BACKEND_E_BUSY;
    }
    r->messages++;
    if (msg->descriptor ==
        &gateway_protocol__activate_jobs_response__descriptor) {
        const GatewayProtocol__ActivateJobsResponse *a = (const void *)msg;
        assert_true(a->n_jobs > 0);
        for (size_t i = 0; i < a->n_jobs; i++) {
            if (r->jobs < 64) {
                r->keys[r->jobs] = a->jobs[i]->key;
            }
            r->jobs++;
        }
    } else {
        assert_ptr_equal(msg->descriptor,
                         &gateway_protocol__activated_job__descriptor);
        if (r->jobs < 64) {
            r->keys[r->jobs] = ((const GatewayProtocol__ActivatedJob *)msg)->key;
        }
        r->jobs++;
    }
    return 0;
}

static void sresult_cb(void *req_data, int status, const char *message,
                       const ProtobufCMessage *response)
{
    struct sresult *r = req_data;

    assert_false(r->done);
    assert_null(response);
    r->done = true;
    r->status = status;
    snprintf(r->message, sizeof(r->message), "%s",
             message != NULL ? message : "");
}

static bool sresult_done(void *arg)
{
    return ((struct sresult *)arg)->done;
}

/* The answer of a unary call, kept packed (responses are borrowed). */
struct aresult {
    struct result r;
    uint8_t packed[4096];
    size_t len;
};

static void aresult_cb(void *req_data, int status, const char *message,
                       const ProtobufCMessage *response)
{
    struct aresult *a = req_data;

    result_cb(&a->r, status, message, response);
    if (response != NULL) {
        a->len = protobuf_c_message_get_packed_size(response);
        assert_true(a->len <= sizeof(a->packed));
        protobuf_c_message_pack(response, a->packed);
    }
}

static bool aresult_done(void *arg)
{
    return ((struct aresult *)arg)->r.done;
}

/* Calls rpc and waits for the answer. */
static void call_wait(struct fixture *fx, const char *rpc,
                      const ProtobufCMessage *req, struct aresult *a)
{
    struct gateway_backend *be = gateway_client_backend(&fx->client);

    memset(a, 0, sizeof(*a));
    assert_int_equal(be->call(be, rpc, req, 0, aresult_cb, a), 0);
    assert_true(run_until(&fx->loop, aresult_done, a, 3000));
}

static void stream_start(struct fixture *fx, const char *rpc,
                         const ProtobufCMessage *req, struct sresult *r)
{
    struct gateway_backend *be = gateway_client_backend(&fx->client);

    memset(r, 0, sizeof(*r));
    r->busy_after = -1;
    assert_non_null(be->call_stream);
    assert_int_equal(be->call_stream(be, rpc, req, 0, sresult_send,
                                     sresult_cb, r),
                     0);
}

static uint32_t commands_total(struct fixture *fx, int body)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < NODES; i++) {
        n += fx->fakes[i].commands[body];
    }
    return n;
}

static void rpc_start(struct fixture *fx)
{
    fx->opts.contact_point_count = NODES;
    client_start(fx);
    assert_true(run_until(&fx->loop, topology_complete, fx, 2000));
}

/* DeployResource and DeployProcess go to partition 1 (node 0); the
 * deprecated DeployProcess is converted both ways. */
static void deploy_goes_to_partition_one(void **state)
{
    struct fixture *fx = *state;
    GatewayProtocol__Resource res = GATEWAY_PROTOCOL__RESOURCE__INIT;
    GatewayProtocol__Resource *resp_[1] = {&res};
    GatewayProtocol__DeployResourceRequest dr =
        GATEWAY_PROTOCOL__DEPLOY_RESOURCE_REQUEST__INIT;
    GatewayProtocol__ProcessRequestObject po =
        GATEWAY_PROTOCOL__PROCESS_REQUEST_OBJECT__INIT;
    GatewayProtocol__ProcessRequestObject *pop[1] = {&po};
    GatewayProtocol__DeployProcessRequest dp =
        GATEWAY_PROTOCOL__DEPLOY_PROCESS_REQUEST__INIT;
    GatewayProtocol__DeployResourceResponse *drr;
    GatewayProtocol__DeployProcessResponse *dpr;
    Tandem__Command__Request *last;
    struct aresult a;
    static uint8_t xml[] = "<definitions/>";

    rpc_start(fx);
    res.name = "order.bpmn";
    res.content.data = xml;
    res.content.len = sizeof(xml) - 1;
    dr.n_resources = 1;
    dr.resources = resp_;
    call_wait(fx, "DeployResource", &dr.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_OK);
    assert_int_equal(fx->fakes[0].commands
                         [TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE],
                     1);
    assert_int_equal(fx->fakes[0].last_partition, 1);
    drr = gateway_protocol__deploy_resource_response__unpack(NULL, a.len,
                                                             a.packed);
    assert_non_null(drr);
    assert_int_equal(drr->n_deployments, 1);
    assert_string_equal(drr->deployments[0]->process->bpmnprocessid, "order");
    gateway_protocol__deploy_resource_response__free_unpacked(drr, NULL);

    po.name = "pay.bpmn";
    po.definition.data = xml;
    po.definition.len = sizeof(xml) - 1;
    dp.n_processes = 1;
    dp.processes = pop;
    call_wait(fx, "DeployProcess", &dp.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_OK);
    last = fake_broker_last(&fx->fakes[0]);
    assert_non_null(last);
    assert_int_equal(last->body_case,
                     TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE);
    assert_int_equal(last->deploy_resource->n_resources, 1);
    assert_string_equal(last->deploy_resource->resources[0]->name,
                        "pay.bpmn");
    assert_int_equal(last->deploy_resource->resources[0]->content.len,
                     sizeof(xml) - 1);
    assert_memory_equal(last->deploy_resource->resources[0]->content.data,
                        xml, sizeof(xml) - 1);
    tandem__command__request__free_unpacked(last, NULL);
    dpr = gateway_protocol__deploy_process_response__unpack(NULL, a.len,
                                                            a.packed);
    assert_non_null(dpr);
    assert_int_equal(dpr->key, (INT64_C(1) << 51) + 99);
    assert_int_equal(dpr->n_processes, 1);
    assert_string_equal(dpr->processes[0]->bpmnprocessid, "pay");
    assert_string_equal(dpr->processes[0]->resourcename, "pay.bpmn");
    gateway_protocol__deploy_process_response__free_unpacked(dpr, NULL);

    /* Nothing to deploy: the engine's rejection, from the gateway. */
    dp.n_processes = 0;
    call_wait(fx, "DeployProcess", &dp.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(a.r.message, "at least one resource"));
    assert_int_equal(
        commands_total(fx, TANDEM__COMMAND__REQUEST__BODY_DEPLOY_RESOURCE), 2);
}

/* CreateProcessInstance: round robin; a failing partition is skipped;
 * all failing: RESOURCE_EXHAUSTED with Zeebe's message; checks. */
static void create_instance_round_robin(void **state)
{
    struct fixture *fx = *state;
    GatewayProtocol__CreateProcessInstanceRequest ci =
        GATEWAY_PROTOCOL__CREATE_PROCESS_INSTANCE_REQUEST__INIT;
    const int body = TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE;
    struct aresult a;
    uint32_t i;

    rpc_start(fx);
    ci.bpmnprocessid = "order";
    ci.version = -1;
    for (i = 0; i < NODES; i++) {
        call_wait(fx, "CreateProcessInstance", &ci.base, &a);
        assert_int_equal(a.r.status, GATEWAY_STATUS_OK);
    }
    for (i = 0; i < NODES; i++) {
        assert_int_equal(fx->fakes[i].commands[body], 1); /* one each */
    }
    /* Partition 2 is overloaded, partition 3 has no leader: every call
     * lands on partition 1. */
    fx->fakes[1].publish_mode = FAKE_PUBLISH_ERROR;
    fx->fakes[1].error_code = TANDEM__COMMAND__CODE__RESOURCE_EXHAUSTED;
    fake_broker_partition(&fx->fakes[2], 3, TANDEM__COMMAND__ROLE__FOLLOWER,
                          1);
    run_for(&fx->loop, 60);
    for (i = 0; i < NODES; i++) {
        call_wait(fx, "CreateProcessInstance", &ci.base, &a);
        assert_int_equal(a.r.status, GATEWAY_STATUS_OK);
    }
    assert_int_equal(fx->fakes[0].commands[body], 1 + NODES);
    assert_int_equal(fx->fakes[2].commands[body], 1);
    assert_true(fx->fakes[1].commands[body] >= 2);
    /* Every partition fails. */
    fx->fakes[0].publish_mode = FAKE_PUBLISH_ERROR;
    fx->fakes[0].error_code = TANDEM__COMMAND__CODE__NOT_LEADER;
    call_wait(fx, "CreateProcessInstance", &ci.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_RESOURCE_EXHAUSTED);
    assert_string_equal(
        a.r.message,
        "Expected to execute the command on one of the partitions, but all "
        "failed; there are no more partitions available to retry. Please "
        "try again. If the error persists contact your zeebe operator");
    /* Checks made at the gateway: nothing reaches a broker. */
    i = commands_total(fx, body);
    ci.bpmnprocessid = "";
    call_wait(fx, "CreateProcessInstance", &ci.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_INVALID_ARGUMENT);
    assert_string_equal(a.r.message,
                        "Command 'CREATE' rejected with code "
                        "'INVALID_ARGUMENT': Expected at least a "
                        "bpmnProcessId or a key greater than -1, but none "
                        "given");
    ci.bpmnprocessid = "order";
    ci.variables = "[1]";
    call_wait(fx, "CreateProcessInstance", &ci.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_INVALID_ARGUMENT);
    assert_string_equal(a.r.message,
                        "Property 'variables' is invalid: Expected document "
                        "to be a root level object, but was 'ARRAY'");
    ci.variables = "{\"a\":";
    call_wait(fx, "CreateProcessInstance", &ci.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(a.r.message, "not valid JSON"));
    assert_int_equal(commands_total(fx, body), i);
}

/* Commands on an entity go to the partition of its key. */
static void key_commands_route_by_key(void **state)
{
    struct fixture *fx = *state;
    GatewayProtocol__CompleteJobRequest cj =
        GATEWAY_PROTOCOL__COMPLETE_JOB_REQUEST__INIT;
    GatewayProtocol__FailJobRequest fj = GATEWAY_PROTOCOL__FAIL_JOB_REQUEST__INIT;
    GatewayProtocol__CancelProcessInstanceRequest cp =
        GATEWAY_PROTOCOL__CANCEL_PROCESS_INSTANCE_REQUEST__INIT;
    GatewayProtocol__SetVariablesRequest sv =
        GATEWAY_PROTOCOL__SET_VARIABLES_REQUEST__INIT;
    GatewayProtocol__UpdateJobRetriesRequest ur =
        GATEWAY_PROTOCOL__UPDATE_JOB_RETRIES_REQUEST__INIT;
    GatewayProtocol__UpdateJobTimeoutRequest ut =
        GATEWAY_PROTOCOL__UPDATE_JOB_TIMEOUT_REQUEST__INIT;
    GatewayProtocol__ThrowErrorRequest te =
        GATEWAY_PROTOCOL__THROW_ERROR_REQUEST__INIT;
    GatewayProtocol__ResolveIncidentRequest ri =
        GATEWAY_PROTOCOL__RESOLVE_INCIDENT_REQUEST__INIT;
    const struct {
        const char *rpc;
        ProtobufCMessage *req;
        int64_t *key;
        int body;
    } rows[] = {
        {"CompleteJob", &cj.base, &cj.jobkey,
         TANDEM__COMMAND__REQUEST__BODY_COMPLETE_JOB},
        {"FailJob", &fj.base, &fj.jobkey,
         TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB},
        {"CancelProcessInstance", &cp.base, &cp.processinstancekey,
         TANDEM__COMMAND__REQUEST__BODY_CANCEL_PROCESS_INSTANCE},
        {"SetVariables", &sv.base, &sv.elementinstancekey,
         TANDEM__COMMAND__REQUEST__BODY_SET_VARIABLES},
        {"UpdateJobRetries", &ur.base, &ur.jobkey,
         TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_RETRIES},
        {"UpdateJobTimeout", &ut.base, &ut.jobkey,
         TANDEM__COMMAND__REQUEST__BODY_UPDATE_JOB_TIMEOUT},
        {"ThrowError", &te.base, &te.jobkey,
         TANDEM__COMMAND__REQUEST__BODY_THROW_ERROR},
        {"ResolveIncident", &ri.base, &ri.incidentkey,
         TANDEM__COMMAND__REQUEST__BODY_RESOLVE_INCIDENT},
    };
    struct aresult a;
    size_t i;

    rpc_start(fx);
    sv.variables = "{\"x\":1}";
    te.errorcode = "E1";
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint32_t p = (uint32_t)(i % NODES) + 1;
        *rows[i].key = (int64_t)((uint64_t)p << 51) + 7;
        call_wait(fx, rows[i].rpc, rows[i].req, &a);
        assert_int_equal(a.r.status, GATEWAY_STATUS_OK);
        assert_int_equal(fx->fakes[p - 1].commands[rows[i].body], 1);
        assert_int_equal(fx->fakes[p - 1].last_partition, p);
        assert_int_equal(commands_total(fx, rows[i].body), 1);
    }
    /* A key of a partition the cluster does not have: Zeebe's message. */
    cj.jobkey = (INT64_C(9) << 51) + 1;
    call_wait(fx, "CompleteJob", &cj.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_UNAVAILABLE);
    assert_non_null(strstr(a.r.message, "partition '9', which cannot be "
                                        "found in the cluster"));
    cj.jobkey = 0;
    call_wait(fx, "CompleteJob", &cj.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_UNAVAILABLE);
    /* A rejection passes through: FAILED_PRECONDITION, the message as
     * the broker wrote it. */
    fx->fakes[1].publish_mode = FAKE_PUBLISH_ERROR;
    fx->fakes[1].error_code = TANDEM__COMMAND__CODE__FAILED_PRECONDITION;
    fj.jobkey = (INT64_C(2) << 51) + 3;
    call_wait(fx, "FailJob", &fj.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_FAILED_PRECONDITION);
    assert_string_equal(a.r.message, "fake error");
    /* Leader moved (NOT_LEADER with a hint): retried at the hint. */
    fx->fakes[1].error_code = TANDEM__COMMAND__CODE__NOT_LEADER;
    fx->fakes[1].leader_hint = 0 + 1;
    call_wait(fx, "FailJob", &fj.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_OK);
    assert_int_equal(
        fx->fakes[0].commands[TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB], 1);
    assert_int_equal(fx->fakes[0].last_partition, 2);
}

/* CreateProcessInstanceWithResult: the broker gets requestTimeout, the
 * call waits that plus a little slack. */
static void create_with_result_deadline(void **state)
{
    struct fixture *fx = *state;
    GatewayProtocol__CreateProcessInstanceRequest ci =
        GATEWAY_PROTOCOL__CREATE_PROCESS_INSTANCE_REQUEST__INIT;
    GatewayProtocol__CreateProcessInstanceWithResultRequest wr =
        GATEWAY_PROTOCOL__CREATE_PROCESS_INSTANCE_WITH_RESULT_REQUEST__INIT;
    GatewayProtocol__CreateProcessInstanceWithResultResponse *out;
    struct aresult a;
    uint32_t i;
    uint64_t start;

    rpc_start(fx);
    ci.bpmnprocessid = "order";
    wr.request = &ci;
    call_wait(fx, "CreateProcessInstanceWithResult", &wr.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_OK);
    out = gateway_protocol__create_process_instance_with_result_response__unpack(
        NULL, a.len, a.packed);
    assert_non_null(out);
    assert_string_equal(out->variables, "{\"done\":true}");
    gateway_protocol__create_process_instance_with_result_response__free_unpacked(
        out, NULL);
    /* The first instance of the round robin: partition 1 (node 0);
     * requestTimeout 0 gives the broker the gateway's request timeout. */
    assert_int_equal(
        fx->fakes[0].commands
            [TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT],
        1);
    assert_true(fx->fakes[0].last_timeout_ms > 1900);
    assert_true(fx->fakes[0].last_timeout_ms <= 2000);
    for (i = 0; i < NODES; i++) {
        fx->fakes[i].publish_mode = FAKE_PUBLISH_SILENT;
    }
    wr.requesttimeout = 200;
    start = uv_now(&fx->loop);
    call_wait(fx, "CreateProcessInstanceWithResult", &wr.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_DEADLINE_EXCEEDED);
    assert_true(uv_now(&fx->loop) - start >= 200 + CLIENT_BROKER_SLACK_MS);
    assert_true(uv_now(&fx->loop) - start < 2500);
    /* The round robin went on to partition 2 (node 1). */
    assert_int_equal(
        fx->fakes[1].commands
            [TANDEM__COMMAND__REQUEST__BODY_CREATE_PROCESS_INSTANCE_WITH_RESULT],
        1);
    assert_true(fx->fakes[1].last_timeout_ms <= 200);
    assert_true(fx->fakes[1].last_timeout_ms >= 150);
    wr.request = NULL;
    call_wait(fx, "CreateProcessInstanceWithResult", &wr.base, &a);
    assert_int_equal(a.r.status, GATEWAY_STATUS_INVALID_ARGUMENT);
}

static void activate_request(GatewayProtocol__ActivateJobsRequest *aj,
                             const char *type, int32_t max, int64_t timeout)
{
    GatewayProtocol__ActivateJobsRequest init =
        GATEWAY_PROTOCOL__ACTIVATE_JOBS_REQUEST__INIT;
    *aj = init;
    aj->type = (char *)(uintptr_t)type;
    aj->worker = "w";
    aj->timeout = 30000;
    aj->maxjobstoactivate = max;
    aj->requesttimeout = timeout;
}

/* ActivateJobs visits every partition and sends one message per
 * partition with jobs; it stops at maxJobsToActivate. */
static void activate_jobs_fans_out(void **state)
{
    struct fixture *fx = *state;
    GatewayProtocol__ActivateJobsRequest aj;
    const int body = TANDEM__COMMAND__REQUEST__BODY_ACTIVATE_JOBS;
    struct sresult r;

    rpc_start(fx);
    fx->fakes[0].jobs_available[1] = 2;
    fx->fakes[1].jobs_available[2] = 1;
    fx->fakes[2].jobs_available[3] = 3;
    activate_request(&aj, "t", 10, -1);
    stream_start(fx, "ActivateJobs", &aj.base, &r);
    assert_true(run_until(&fx->loop, sresult_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_OK);
    assert_int_equal(r.messages, 3);
    assert_int_equal(r.jobs, 6);
    assert_int_equal(commands_total(fx, body), 3);
    for (uint32_t i = 0; i < r.jobs; i++) {
        int64_t p = r.keys[i] >> 51;
        assert_true(p >= 1 && p <= 3);
    }
    /* maxJobsToActivate reached: the round stops. */
    fx->fakes[0].jobs_available[1] = 5;
    fx->fakes[1].jobs_available[2] = 5;
    fx->fakes[2].jobs_available[3] = 5;
    activate_request(&aj, "t", 7, -1);
    stream_start(fx, "ActivateJobs", &aj.base, &r);
    assert_true(run_until(&fx->loop, sresult_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_OK);
    assert_int_equal(r.jobs, 7);
    assert_int_equal(r.messages, 2);
    assert_int_equal(commands_total(fx, body), 5);
    /* Checks, Zeebe's messages. */
    activate_request(&aj, "t", 0, -1);
    stream_start(fx, "ActivateJobs", &aj.base, &r);
    assert_true(r.done);
    assert_int_equal(r.status, GATEWAY_STATUS_INVALID_ARGUMENT);
    assert_string_equal(r.message,
                        "Command 'ACTIVATE' rejected with code "
                        "'INVALID_ARGUMENT': Expected to activate job batch "
                        "with max jobs to activate to be greater than zero, "
                        "but it was '0'");
    activate_request(&aj, "t", 1, -1);
    aj.timeout = 0;
    stream_start(fx, "ActivateJobs", &aj.base, &r);
    assert_int_equal(r.status, GATEWAY_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(r.message, "timeout to be greater than zero, "
                                      "but it was '0'"));
    activate_request(&aj, "", 1, -1);
    stream_start(fx, "ActivateJobs", &aj.base, &r);
    assert_int_equal(r.status, GATEWAY_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(r.message, "type to be present, but it was "
                                      "blank"));
    /* A rejection from a broker ends the call with it. */
    fx->fakes[0].publish_mode = FAKE_PUBLISH_ERROR;
    fx->fakes[1].publish_mode = FAKE_PUBLISH_ERROR;
    fx->fakes[2].publish_mode = FAKE_PUBLISH_ERROR;
    fx->fakes[0].error_code = TANDEM__COMMAND__CODE__INVALID_ARGUMENT;
    fx->fakes[1].error_code = TANDEM__COMMAND__CODE__INVALID_ARGUMENT;
    fx->fakes[2].error_code = TANDEM__COMMAND__CODE__INVALID_ARGUMENT;
    activate_request(&aj, "t", 1, -1);
    stream_start(fx, "ActivateJobs", &aj.base, &r);
    assert_true(run_until(&fx->loop, sresult_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_INVALID_ARGUMENT);
    assert_string_equal(r.message, "fake error");
    /* Every broker overloaded, no jobs: Zeebe's RESOURCE_EXHAUSTED. */
    fx->fakes[0].error_code = TANDEM__COMMAND__CODE__RESOURCE_EXHAUSTED;
    fx->fakes[1].error_code = TANDEM__COMMAND__CODE__RESOURCE_EXHAUSTED;
    fx->fakes[2].error_code = TANDEM__COMMAND__CODE__RESOURCE_EXHAUSTED;
    activate_request(&aj, "t", 1, 0);
    stream_start(fx, "ActivateJobs", &aj.base, &r);
    assert_true(run_until(&fx->loop, sresult_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_RESOURCE_EXHAUSTED);
    assert_string_equal(r.message,
                        "Expected to activate jobs of type 't', but no jobs "
                        "available and at least one broker returned "
                        "'RESOURCE_EXHAUSTED'. Please try again later.");
}

/* Long polling: parked until a broker reports jobs; at the deadline the
 * stream ends with no jobs; requestTimeout < 0 ends at once. */
static void activate_jobs_long_polling(void **state)
{
    struct fixture *fx = *state;
    GatewayProtocol__ActivateJobsRequest aj;
    const int await_body = TANDEM__COMMAND__REQUEST__BODY_AWAIT_JOBS;
    struct sresult r, r2;
    uint64_t start;
    uint32_t i;

    rpc_start(fx);
    /* No long polling: ends at once, no await. */
    activate_request(&aj, "lp", 5, -1);
    stream_start(fx, "ActivateJobs", &aj.base, &r);
    assert_true(run_until(&fx->loop, sresult_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_OK);
    assert_int_equal(r.messages, 0);
    assert_int_equal(commands_total(fx, await_body), 0);

    /* Parked; jobs appear on partition 2 later: delivered. */
    activate_request(&aj, "lp", 5, 3000);
    stream_start(fx, "ActivateJobs", &aj.base, &r);
    for (i = 0; i < 100 && commands_total(fx, await_body) < NODES; i++) {
        run_for(&fx->loop, 10);
    }
    assert_int_equal(commands_total(fx, await_body), NODES);
    assert_false(r.done);
    assert_int_equal(fx->fakes[1].await_count, 1);
    assert_true(fx->fakes[1].last_timeout_ms <= 3000);
    assert_true(fx->fakes[1].last_timeout_ms > 2000);
    fake_broker_jobs_add(&fx->fakes[1], 2, 2);
    assert_true(run_until(&fx->loop, sresult_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_OK);
    assert_int_equal(r.jobs, 2);
    assert_int_equal(r.messages, 1);

    /* Nothing comes: OK with no jobs at the deadline. */
    start = uv_now(&fx->loop);
    activate_request(&aj, "lp", 5, 150);
    stream_start(fx, "ActivateJobs", &aj.base, &r);
    assert_true(run_until(&fx->loop, sresult_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_OK);
    assert_int_equal(r.messages, 0);
    assert_true(uv_now(&fx->loop) - start >= 150);
    assert_true(uv_now(&fx->loop) - start < 1000);

    /* Bounded: jobs_max parked calls, the next is refused. */
    fx->client.opts.jobs_max = 1;
    activate_request(&aj, "lp", 5, 2000);
    stream_start(fx, "ActivateJobs", &aj.base, &r);
    run_for(&fx->loop, 30);
    assert_false(r.done);
    stream_start(fx, "ActivateJobs", &aj.base, &r2);
    assert_true(r2.done);
    assert_int_equal(r2.status, GATEWAY_STATUS_RESOURCE_EXHAUSTED);
    /* A parked call at close: UNAVAILABLE. */
    fx->client.data = fx;
    gateway_client_close(&fx->client, client_closed_cb);
    assert_true(r.done);
    assert_int_equal(r.status, GATEWAY_STATUS_UNAVAILABLE);
}

/* StreamActivatedJobs pushes each job as one message, keeps going, and
 * stops when cancelled; jobs a client cannot take are failed back. */
static void stream_jobs_and_cancel(void **state)
{
    struct fixture *fx = *state;
    GatewayProtocol__StreamActivatedJobsRequest sr =
        GATEWAY_PROTOCOL__STREAM_ACTIVATED_JOBS_REQUEST__INIT;
    GatewayProtocol__ActivateJobsRequest aj;
    struct gateway_backend *be;
    struct sresult r;
    uint32_t i;

    rpc_start(fx);
    be = gateway_client_backend(&fx->client);
    sr.type = "s";
    sr.worker = "w";
    sr.timeout = 1000;
    fx->fakes[0].jobs_available[1] = 2;
    stream_start(fx, "StreamActivatedJobs", &sr.base, &r);
    for (i = 0; i < 200 && r.jobs < 2; i++) {
        run_for(&fx->loop, 5);
    }
    assert_int_equal(r.jobs, 2);
    assert_int_equal(r.messages, 2);
    fake_broker_jobs_add(&fx->fakes[2], 3, 1);
    for (i = 0; i < 200 && r.jobs < 3; i++) {
        run_for(&fx->loop, 5);
    }
    assert_int_equal(r.jobs, 3);
    assert_false(r.done);
    assert_int_equal(fx->client.streams_count, 1);
    be->cancel(be, &r);
    assert_int_equal(fx->client.streams_count, 0);
    fake_broker_jobs_add(&fx->fakes[1], 2, 1);
    run_for(&fx->loop, 50);
    assert_int_equal(r.jobs, 3);
    assert_false(r.done);
    assert_int_equal(fx->fakes[1].jobs_available[2], 1); /* not taken */
    /* Checks. */
    sr.timeout = 0;
    stream_start(fx, "StreamActivatedJobs", &sr.base, &r);
    assert_true(r.done);
    assert_int_equal(r.status, GATEWAY_STATUS_INVALID_ARGUMENT);
    /* ActivateJobs whose stream refuses the message: the jobs are failed
     * back with their retries, the call ends CANCELLED. */
    activate_request(&aj, "s", 5, -1);
    stream_start(fx, "ActivateJobs", &aj.base, &r);
    r.busy_after = 0;
    assert_true(run_until(&fx->loop, sresult_done, &r, 2000));
    assert_int_equal(r.status, GATEWAY_STATUS_CANCELLED);
    assert_string_equal(r.message, "Failed to send activated jobs to client");
    for (i = 0; i < 100 && fx->fakes[1].commands
                                   [TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB] <
                               1;
         i++) {
        run_for(&fx->loop, 5);
    }
    assert_int_equal(
        fx->fakes[1].commands[TANDEM__COMMAND__REQUEST__BODY_FAIL_JOB], 1);
    assert_int_equal(fx->client.stats.jobs_failed_back, 1);
}

#define RPC_TESTS                                                            \
    cmocka_unit_test_setup_teardown(deploy_goes_to_partition_one, setup,     \
                                    teardown),                               \
        cmocka_unit_test_setup_teardown(create_instance_round_robin, setup,  \
                                        teardown),                           \
        cmocka_unit_test_setup_teardown(key_commands_route_by_key, setup,    \
                                        teardown),                           \
        cmocka_unit_test_setup_teardown(create_with_result_deadline, setup,  \
                                        teardown),                           \
        cmocka_unit_test_setup_teardown(activate_jobs_fans_out, setup,       \
                                        teardown),                           \
        cmocka_unit_test_setup_teardown(activate_jobs_long_polling, setup,   \
                                        teardown),                           \
        cmocka_unit_test_setup_teardown(stream_jobs_and_cancel, setup,       \
                                        teardown),


int main(void)
{
    const struct CMUnitTest tests[] = {
        RPC_TESTS
        cmocka_unit_test(partition_of_key_matches_zeebe),
        cmocka_unit_test_setup_teardown(init_rejects_bad_options, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(topology_discovers_and_merges, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(publish_routes_to_leader, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(publish_retries_on_not_leader, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(publish_retries_on_disconnect, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(publish_deadline_exceeded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            publish_without_topology_is_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(overload_is_resource_exhausted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(broker_errors_are_mapped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(other_rpcs_and_close, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
