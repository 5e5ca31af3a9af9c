/* test_client.c: tests of gateway/client.c against fake brokers
 * (test_client_fake.h) on 127.0.0.1: topology discovery and merging,
 * leader routing, retries on NOT_LEADER and on lost connections,
 * deadlines, bounds (RESOURCE_EXHAUSTED), error mapping, cancel, close.
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

#include "gateway/client.h"
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
    assert_int_equal(be->call(be, "CreateProcessInstance", NULL, 0, result_cb,
                              &r),
                     0);
    assert_true(r.done);
    assert_int_equal(r.status, GATEWAY_STATUS_UNIMPLEMENTED);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
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
