/* test_rest.c: tests of gateway/rest.c: a real REST server on 127.0.0.1
 * serving the merged topology of a gateway_client connected to fake
 * brokers (test_client_fake.h), fetched with a tiny libuv HTTP client and
 * parsed with jansson: the JSON shape of Zeebe's /v2/topology, 404 and
 * 405 problem details, HEAD, the connection bound, and closing with
 * connections still open; then the whole gateway object (gateway.h) on
 * ephemeral ports. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "gateway/client.h"
#include "gateway/gateway.h"
#include "gateway/rest.h"
#include "tests/gateway/test_client_fake.h"

#define NODES 2u

/* ---- a tiny HTTP/1.1 client: one request, read until EOF ---- */

struct http {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    char request[512];
    char response[65536];
    size_t len;
    bool done;   /* EOF or error */
    bool closed; /* handle closed */
    int status;  /* parsed HTTP status, 0 if none */
    const char *body;
};

static void http_closed(uv_handle_t *h)
{
    struct http *c = h->data;
    c->closed = true;
}

static void http_finish(struct http *c)
{
    const char *sp;

    c->done = true;
    c->response[c->len] = '\0';
    sp = strchr(c->response, ' ');
    c->status = sp != NULL ? atoi(sp + 1) : 0;
    c->body = strstr(c->response, "\r\n\r\n");
    c->body = c->body != NULL ? c->body + 4 : "";
    uv_close((uv_handle_t *)&c->tcp, http_closed);
}

static void http_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct http *c = h->data;
    (void)size;
    *buf = uv_buf_init(c->response + c->len,
                       (unsigned)(sizeof(c->response) - 1 - c->len));
}

static void http_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct http *c = s->data;
    (void)buf;
    if (n < 0) {
        http_finish(c);
        return;
    }
    c->len += (size_t)n;
}

static void http_written(uv_write_t *req, int status)
{
    (void)req;
    (void)status;
}

static void http_connected(uv_connect_t *req, int status)
{
    struct http *c = req->data;
    uv_buf_t buf;

    if (status != 0) {
        http_finish(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, http_alloc, http_read);
    if (c->request[0] != '\0') {
        buf = uv_buf_init(c->request, (unsigned)strlen(c->request));
        uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, http_written);
    }
}

/* Starts a request; request "" only connects (an idle connection). */
static void http_start(uv_loop_t *loop, struct http *c, uint16_t port,
                       const char *method, const char *path, bool keep)
{
    struct sockaddr_in addr;

    memset(c, 0, sizeof(*c));
    if (method != NULL) {
        snprintf(c->request, sizeof(c->request),
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", method, path,
                 keep ? "" : "Connection: close\r\n");
    }
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    uv_ip4_addr("127.0.0.1", port, &addr);
    assert_int_equal(uv_tcp_connect(&c->connect, &c->tcp,
                                    (const struct sockaddr *)&addr,
                                    http_connected),
                     0);
}

static bool http_done(void *arg)
{
    return ((struct http *)arg)->done;
}

static bool http_done_flag(void *arg)
{
    return *(bool *)arg;
}

/* ---- fixture ---- */

struct fixture {
    uv_loop_t loop;
    struct fake_broker fakes[NODES];
    struct fake_broker *cluster[NODES];
    char addr[NODES][32];
    const char *contact[NODES];
    struct gateway_client client;
    struct rest_server rest;
    uint16_t port;
    bool rest_closed;
};

static const GatewayProtocol__TopologyResponse *topology_of(void *data)
{
    return gateway_client_topology(data);
}

static bool topology_ready(void *arg)
{
    struct fixture *fx = arg;
    const GatewayProtocol__TopologyResponse *t =
        gateway_client_topology(&fx->client);
    return t->n_brokers == NODES && t->brokers[0]->n_partitions == 2 &&
           t->brokers[1]->n_partitions == 2;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct gateway_client_options co;
    struct rest_server_options ro;
    uint32_t i;

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
        f->partitions_count = 2;
        f->replication_factor = 2;
        fake_broker_partition(f, 1,
                              i == 0 ? TANDEM__COMMAND__ROLE__LEADER
                                     : TANDEM__COMMAND__ROLE__FOLLOWER,
                              3);
        fake_broker_partition(f, 2,
                              i == 1 ? TANDEM__COMMAND__ROLE__LEADER
                                     : TANDEM__COMMAND__ROLE__INACTIVE,
                              3);
        fake_broker_address(f, fx->addr[i]);
        fx->contact[i] = fx->addr[i];
    }
    fx->fakes[1].partitions[1].health = TANDEM__COMMAND__HEALTH__UNHEALTHY;
    gateway_client_options_default(&co);
    co.contact_points = fx->contact;
    co.contact_point_count = 1;
    co.topology_refresh_ms = 20;
    co.topology_stale_ms = 200;
    assert_int_equal(gateway_client_init(&fx->loop, &fx->client, &co), 0);
    assert_int_equal(gateway_client_start(&fx->client), 0);
    rest_server_options_default(&ro);
    ro.topology = topology_of;
    ro.topology_data = &fx->client;
    ro.connections_max = 2;
    assert_int_equal(rest_server_init(&fx->loop, &fx->rest, &ro), 0);
    fx->rest.data = fx;
    assert_int_equal(rest_server_start(&fx->rest, "127.0.0.1", 0), 0);
    assert_int_equal(rest_server_start(&fx->rest, "127.0.0.1", 0),
                     REST_E_STATE);
    fx->port = rest_server_port(&fx->rest);
    assert_true(fx->port != 0);
    assert_true(run_until(&fx->loop, topology_ready, fx, 2000));
    *state = fx;
    return 0;
}

static void rest_closed_cb(struct rest_server *srv)
{
    struct fixture *fx = srv->data;
    fx->rest_closed = true;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    uint32_t i;

    rest_server_close(&fx->rest, rest_closed_cb);
    gateway_client_close(&fx->client, NULL);
    for (i = 0; i < NODES; i++) {
        fake_broker_close(&fx->fakes[i]);
    }
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_true(fx->rest_closed);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

static json_t *fetch_json(struct fixture *fx, const char *method,
                          const char *path, int status)
{
    struct http c;
    json_error_t err;
    json_t *j;

    http_start(&fx->loop, &c, fx->port, method, path, false);
    assert_true(run_until(&fx->loop, http_done, &c, 2000));
    assert_int_equal(c.status, status);
    j = json_loads(c.body, 0, &err);
    if (j == NULL) {
        fail_msg("not JSON: %s (%s)", c.body, err.text);
    }
    run_until(&fx->loop, http_done, &c, 10); /* let the close finish */
    return j;
}

/* ---- tests ---- */

static void topology_json_shape(void **state)
{
    struct fixture *fx = *state;
    const char *paths[] = {"/v2/topology", "/v1/topology",
                           "/v2/topology?x=1"};
    size_t i;

    for (i = 0; i < 3; i++) {
        json_t *j = fetch_json(fx, "GET", paths[i], 200);
        json_t *brokers = json_object_get(j, "brokers");
        json_t *b1, *p;

        assert_int_equal(json_object_size(j), 6);
        assert_int_equal(json_integer_value(json_object_get(j, "clusterSize")),
                         2);
        assert_int_equal(
            json_integer_value(json_object_get(j, "partitionsCount")), 2);
        assert_int_equal(
            json_integer_value(json_object_get(j, "replicationFactor")), 2);
        assert_string_equal(
            json_string_value(json_object_get(j, "gatewayVersion")), "8.4.0");
        assert_string_equal(
            json_string_value(json_object_get(j, "lastCompletedChangeId")),
            "-1");
        assert_true(json_is_array(brokers));
        assert_int_equal(json_array_size(brokers), 2);
        b1 = json_array_get(brokers, 1);
        assert_int_equal(json_object_size(b1), 5);
        assert_int_equal(json_integer_value(json_object_get(b1, "nodeId")), 1);
        assert_string_equal(json_string_value(json_object_get(b1, "host")),
                            "127.0.0.1");
        assert_int_equal(json_integer_value(json_object_get(b1, "port")),
                         fx->fakes[1].port);
        assert_string_equal(json_string_value(json_object_get(b1, "version")),
                            "8.4.0-fake");
        p = json_object_get(b1, "partitions");
        assert_int_equal(json_array_size(p), 2);
        assert_int_equal(json_integer_value(json_object_get(
                             json_array_get(p, 0), "partitionId")),
                         1);
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(p, 0), "role")),
                            "follower");
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(p, 0), "health")),
                            "healthy");
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(p, 1), "role")),
                            "leader");
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(p, 1), "health")),
                            "unhealthy");
        p = json_object_get(json_array_get(brokers, 0), "partitions");
        assert_string_equal(json_string_value(json_object_get(
                                json_array_get(p, 1), "role")),
                            "inactive");
        json_decref(j);
    }
}

static void errors_are_problem_details(void **state)
{
    struct fixture *fx = *state;
    json_t *j;
    struct http c;

    j = fetch_json(fx, "GET", "/v2/nothing", 404);
    assert_string_equal(json_string_value(json_object_get(j, "type")),
                        "about:blank");
    assert_string_equal(json_string_value(json_object_get(j, "title")),
                        "Not Found");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
    assert_non_null(strstr(json_string_value(json_object_get(j, "detail")),
                           "/v2/nothing"));
    assert_string_equal(json_string_value(json_object_get(j, "instance")),
                        "/v2/nothing");
    json_decref(j);

    j = fetch_json(fx, "POST", "/v2/topology", 405);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 405);
    assert_string_equal(json_string_value(json_object_get(j, "title")),
                        "Method Not Allowed");
    json_decref(j);

    /* The 405 carries Allow and the problem content type. */
    http_start(&fx->loop, &c, fx->port, "DELETE", "/v1/topology", false);
    assert_true(run_until(&fx->loop, http_done, &c, 2000));
    assert_int_equal(c.status, 405);
    assert_non_null(strstr(c.response, "allow: GET, HEAD"));
    assert_non_null(strstr(c.response, "application/problem+json"));

    /* HEAD: headers only. */
    http_start(&fx->loop, &c, fx->port, "HEAD", "/v2/topology", false);
    assert_true(run_until(&fx->loop, http_done, &c, 2000));
    assert_int_equal(c.status, 200);
    assert_string_equal(c.body, "");
    assert_true(fx->rest.requests >= 4);
}

static void connections_are_bounded_and_closed(void **state)
{
    struct fixture *fx = *state;
    struct http idle, keep, extra;

    /* Two open connections (one idle, one kept alive after a request)
     * reach connections_max = 2; a third is closed at once. */
    http_start(&fx->loop, &idle, fx->port, NULL, "", false);
    http_start(&fx->loop, &keep, fx->port, "GET", "/v2/topology", true);
    run_for(&fx->loop, 100);
    assert_false(idle.done);
    assert_false(keep.done);
    assert_non_null(strstr(keep.response, "200 OK"));
    http_start(&fx->loop, &extra, fx->port, "GET", "/v2/topology", false);
    assert_true(run_until(&fx->loop, http_done, &extra, 2000));
    assert_int_equal(extra.status, 0);
    assert_int_equal(fx->rest.conns_rejected, 1);

    /* Closing the server ends both open connections. */
    rest_server_close(&fx->rest, rest_closed_cb);
    assert_true(run_until(&fx->loop, http_done, &idle, 2000));
    assert_true(run_until(&fx->loop, http_done, &keep, 2000));
    run_for(&fx->loop, 20);
    assert_true(fx->rest_closed);
}

static void gateway_closed_cb(struct gateway *gw)
{
    *(bool *)gw->data = true;
}

/* The gateway object wires client, gRPC and REST together. */
static void gateway_object_serves_topology(void **state)
{
    struct fixture *fx = *state;
    struct gateway gw;
    struct gateway_options o;
    bool closed = false;
    uint64_t end;
    json_t *j = NULL;
    uint16_t port;

    gateway_options_default(&o);
    o.host = "127.0.0.1";
    o.grpc_port = 0;
    o.rest_port = 0;
    o.contact_points = fx->contact;
    o.contact_point_count = 1;
    o.topology_refresh_ms = 20;
    o.version = "8.4.9";
    o.contact_point_count = 0;
    assert_int_equal(gateway_init(&fx->loop, &gw, &o), GATEWAY_E_INVALID);
    assert_true(strlen(gw.errmsg) > 0);
    o.contact_point_count = 1;
    assert_int_equal(gateway_init(&fx->loop, &gw, &o), 0);
    gw.data = &closed;
    assert_int_equal(gateway_start(&gw), 0);
    assert_int_equal(gateway_start(&gw), GATEWAY_E_STATE);
    assert_true(gateway_grpc_port(&gw) != 0);
    port = gateway_rest_port(&gw);
    assert_true(port != 0);
    end = uv_now(&fx->loop) + 2000;
    while (uv_now(&fx->loop) < end) {
        struct http c;
        json_error_t err;
        http_start(&fx->loop, &c, port, "GET", "/v2/topology", false);
        assert_true(run_until(&fx->loop, http_done, &c, 2000));
        assert_int_equal(c.status, 200);
        run_until(&fx->loop, http_done, &c, 5);
        j = json_loads(c.body, 0, &err);
        assert_non_null(j);
        if (json_array_size(json_object_get(j, "brokers")) == NODES) {
            break;
        }
        json_decref(j);
        j = NULL;
        run_for(&fx->loop, 20);
    }
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "gatewayVersion")),
                        "8.4.9");
    json_decref(j);
    gateway_close(&gw, gateway_closed_cb);
    gateway_close(&gw, gateway_closed_cb);
    assert_true(run_until(&fx->loop, http_done_flag, &closed, 2000));
    assert_null(gw.impl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(topology_json_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(errors_are_problem_details, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(connections_are_bounded_and_closed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(gateway_object_serves_topology,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
