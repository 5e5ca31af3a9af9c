/* test_management.c: cmocka tests of broker/management.c, the management
 * HTTP server.
 *
 * Data flow: each test starts the server on 127.0.0.1 with an ephemeral
 * port, on a libuv loop run by a background thread (the runner); the fake
 * provider returns a status the test sets (under a mutex). The test thread
 * talks HTTP/1.1 through plain blocking sockets with receive timeouts (a
 * bounded run), parses the status line, headers and body, and checks JSON
 * bodies with jansson. Teardown asks the loop thread (uv_async) to close the
 * server, waits for uv_run() to return and checks uv_loop_close() == 0
 * (no handle leaked).
 */
/* getaddrinfo, shutdown, pthread_rwlock_t (uv.h) are POSIX, not C11. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "broker/management.h"

#define TEST_IO_TIMEOUT_S 5
#define TEST_RESPONSE_MAX 65536

struct fixture {
    uv_loop_t loop;
    uv_async_t stop;
    struct management m;
    uint16_t port;
    bool closed;
    int leftover_fd; /* a client socket left open for teardown, or -1 */

    pthread_mutex_t mutex; /* guards fake, fail_code and the change fake */
    struct management_status fake;
    int fail_code;

    /* The fake change() provider: the last request it saw, and the reply
     * it gives (status, a JSON body text or NULL, a message, a code). */
    struct management_change_request last_req;
    int change_calls;
    int reply_status;
    const char *reply_body;
    const char *reply_message;
    int change_code;

    /* Deferred replies: with later set, change() returns
     * MANAGEMENT_REPLY_LATER and keeps its ticket; the finish async then
     * answers it on the loop thread with reply_status (finish_rv gets
     * management_reply_finish()'s result, finished counts calls). */
    bool later;
    uint64_t later_ticket;
    uv_async_t finish;
    int finish_rv;
    int finished;
};

/* ------------------------------------------------------------------------
 * Fake provider and loop thread
 * ------------------------------------------------------------------------ */

static int fake_status(void *data, struct management_status *out)
{
    struct fixture *fx = data;
    pthread_mutex_lock(&fx->mutex);
    *out = fx->fake;
    int rv = fx->fail_code;
    pthread_mutex_unlock(&fx->mutex);
    return rv;
}

static int fake_change(void *data, const struct management_change_request *req,
                       struct management_reply *out)
{
    struct fixture *fx = data;
    pthread_mutex_lock(&fx->mutex);
    fx->last_req = *req;
    fx->change_calls++;
    out->status = fx->reply_status;
    if (fx->reply_body != NULL) {
        out->body = json_loads(fx->reply_body, 0, NULL);
    }
    if (fx->reply_message != NULL) {
        snprintf(out->message, sizeof(out->message), "%s", fx->reply_message);
    }
    int rv = fx->change_code;
    if (fx->later && out->ticket != 0) {
        fx->later_ticket = out->ticket;
        json_decref((json_t *)out->body);
        out->body = NULL;
        rv = MANAGEMENT_REPLY_LATER;
    }
    pthread_mutex_unlock(&fx->mutex);
    return rv;
}

static void finish_cb(uv_async_t *async)
{
    struct fixture *fx = async->data;
    struct management_reply r;
    pthread_mutex_lock(&fx->mutex);
    memset(&r, 0, sizeof(r));
    r.status = fx->reply_status;
    if (fx->reply_body != NULL) {
        r.body = json_loads(fx->reply_body, 0, NULL);
    }
    if (fx->reply_message != NULL) {
        snprintf(r.message, sizeof(r.message), "%s", fx->reply_message);
    }
    uint64_t ticket = fx->later_ticket;
    pthread_mutex_unlock(&fx->mutex);
    int rv = management_reply_finish(&fx->m, ticket, &r);
    pthread_mutex_lock(&fx->mutex);
    fx->finish_rv = rv;
    fx->finished++;
    pthread_mutex_unlock(&fx->mutex);
}

static void fake_reply(struct fixture *fx, int status, const char *body,
                       const char *message)
{
    pthread_mutex_lock(&fx->mutex);
    fx->reply_status = status;
    fx->reply_body = body;
    fx->reply_message = message;
    fx->change_code = 0;
    fx->change_calls = 0;
    memset(&fx->last_req, 0, sizeof(fx->last_req));
    pthread_mutex_unlock(&fx->mutex);
}

static void fake_set(struct fixture *fx, bool started, uint32_t count,
                     enum management_role role, enum management_health health)
{
    pthread_mutex_lock(&fx->mutex);
    memset(&fx->fake, 0, sizeof(fx->fake));
    fx->fake.node_id = 2;
    fx->fake.started = started;
    fx->fake.ready = started;
    snprintf(fx->fake.version, sizeof(fx->fake.version), "0.1.0");
    fx->fake.partition_count = count;
    for (uint32_t i = 0; i < count; i++) {
        struct management_partition *p = &fx->fake.partitions[i];
        p->partition_id = i + 1;
        p->role = role;
        p->health = health;
        p->term = 3;
        p->commit_index = 100 + i;
        p->applied_index = 90 + i;
        p->last_index = 110 + i;
    }
    pthread_mutex_unlock(&fx->mutex);
}

static void server_closed_cb(struct management *m)
{
    struct fixture *fx = m->data;
    fx->closed = true;
}

static void stop_cb(uv_async_t *async)
{
    struct fixture *fx = async->data;
    management_close(&fx->m, server_closed_cb);
    uv_close((uv_handle_t *)&fx->stop, NULL);
    uv_close((uv_handle_t *)&fx->finish, NULL);
}

/* The loop runner: one thread for the whole run that runs each test's
 * loop in turn. One thread rather than one per test because h2o keeps a
 * per-thread cache of memory-pool chunks (a static __thread recycle list,
 * bounded, never freed); a thread that exits would leak it, a thread that
 * lives until exit keeps it reachable, as the broker's loop thread does. */
static struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    bool started;
    uv_loop_t *loop; /* the loop to run, NULL when idle */
} runner = {.mutex = PTHREAD_MUTEX_INITIALIZER,
            .cond = PTHREAD_COND_INITIALIZER};

static void *runner_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&runner.mutex);
    for (;;) {
        while (runner.loop == NULL) {
            pthread_cond_wait(&runner.cond, &runner.mutex);
        }
        uv_loop_t *loop = runner.loop;
        pthread_mutex_unlock(&runner.mutex);
        uv_run(loop, UV_RUN_DEFAULT);
        pthread_mutex_lock(&runner.mutex);
        runner.loop = NULL;
        pthread_cond_broadcast(&runner.cond);
    }
    return NULL;
}

/* Hands loop to the runner thread (started on first use). */
static void runner_run(uv_loop_t *loop)
{
    pthread_mutex_lock(&runner.mutex);
    if (!runner.started) {
        pthread_t thread;
        assert_int_equal(pthread_create(&thread, NULL, runner_thread, NULL), 0);
        pthread_detach(thread);
        runner.started = true;
    }
    assert_null(runner.loop);
    runner.loop = loop;
    pthread_cond_broadcast(&runner.cond);
    pthread_mutex_unlock(&runner.mutex);
}

/* Waits until uv_run() on the runner's loop has returned. */
static void runner_wait(void)
{
    pthread_mutex_lock(&runner.mutex);
    while (runner.loop != NULL) {
        pthread_cond_wait(&runner.cond, &runner.mutex);
    }
    pthread_mutex_unlock(&runner.mutex);
}

static int fixture_start(void **state, uint32_t connections_max)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    pthread_mutex_init(&fx->mutex, NULL);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    fx->m.data = fx;
    fx->leftover_fd = -1;
    struct management_options opts = {
        .host = "127.0.0.1", .port = 0, .connections_max = connections_max};
    struct management_provider p = {
        .data = fx, .status = fake_status, .change = fake_change};
    assert_int_equal(management_init(&fx->loop, &fx->m, &opts, &p), 0);
    assert_int_equal(management_start(&fx->m), 0);
    fx->port = management_bound_port(&fx->m);
    assert_true(fx->port > 0);
    assert_int_equal(uv_async_init(&fx->loop, &fx->stop, stop_cb), 0);
    fx->stop.data = fx;
    assert_int_equal(uv_async_init(&fx->loop, &fx->finish, finish_cb), 0);
    fx->finish.data = fx;
    runner_run(&fx->loop);
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return fixture_start(state, 0);
}

static int setup_two_connections(void **state)
{
    return fixture_start(state, 2);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(uv_async_send(&fx->stop), 0);
    runner_wait();
    assert_true(fx->closed);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    if (fx->leftover_fd >= 0) {
        close(fx->leftover_fd);
    }
    pthread_mutex_destroy(&fx->mutex);
    free(fx);
    return 0;
}

/* ------------------------------------------------------------------------
 * Minimal HTTP/1.1 client
 * ------------------------------------------------------------------------ */

struct response {
    int status;
    char head[TEST_RESPONSE_MAX]; /* status line and headers */
    char body[TEST_RESPONSE_MAX];
    size_t body_len;
};

static int client_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = TEST_IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
}

static void client_send(int fd, const char *bytes, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, bytes + off, len - off, MSG_NOSIGNAL);
        assert_true(n > 0);
        off += (size_t)n;
    }
}

/* Reads until the server closes the connection (or the timeout fails the
 * test) and splits the response. */
static void client_receive(int fd, struct response *res)
{
    static char raw[2 * TEST_RESPONSE_MAX];
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(fd, raw + len, sizeof(raw) - 1 - len, 0);
        if (n == 0) {
            break;
        }
        if (n < 0 && errno == ECONNRESET && len > 0) {
            break;
        }
        assert_true(n > 0); /* a timeout or error fails here */
        len += (size_t)n;
        assert_true(len < sizeof(raw) - 1);
    }
    raw[len] = '\0';
    char *sep = strstr(raw, "\r\n\r\n");
    assert_non_null(sep);
    size_t head_len = (size_t)(sep - raw);
    assert_true(head_len < sizeof(res->head));
    memcpy(res->head, raw, head_len);
    res->head[head_len] = '\0';
    res->body_len = len - head_len - 4;
    assert_true(res->body_len < sizeof(res->body));
    memcpy(res->body, sep + 4, res->body_len);
    res->body[res->body_len] = '\0';
    assert_int_equal(sscanf(raw, "HTTP/1.%*d %d", &res->status), 1);
}

/* One request on a fresh connection with "Connection: close". */
static struct response *http(struct fixture *fx, const char *method,
                             const char *path)
{
    static struct response res;
    memset(&res, 0, sizeof(res));
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\n\r\n",
                     method, path);
    int fd = client_connect(fx->port);
    client_send(fd, req, (size_t)n);
    client_receive(fd, &res);
    close(fd);
    return &res;
}

/* One request with a body (content_type NULL: no Content-Type). */
static struct response *http_body(struct fixture *fx, const char *method,
                                  const char *path, const char *content_type,
                                  const char *body, size_t body_len)
{
    static struct response res;
    static char req[2 * TEST_RESPONSE_MAX];
    memset(&res, 0, sizeof(res));
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\n%s%s%sContent-Length: %zu\r\n\r\n",
                     method, path, content_type != NULL ? "Content-Type: " : "",
                     content_type != NULL ? content_type : "",
                     content_type != NULL ? "\r\n" : "", body_len);
    assert_true(n > 0 && (size_t)n + body_len < sizeof(req));
    memcpy(req + n, body, body_len);
    int fd = client_connect(fx->port);
    client_send(fd, req, (size_t)n + body_len);
    client_receive(fd, &res);
    close(fd);
    return &res;
}

static struct response *post_json(struct fixture *fx, const char *path,
                                  const char *body)
{
    return http_body(fx, "POST", path, "application/json", body, strlen(body));
}

static int http_status(struct fixture *fx, const char *path)
{
    return http(fx, "GET", path)->status;
}

/* The body as JSON; fails the test if it does not parse. Caller decrefs. */
static json_t *response_json(const struct response *res)
{
    json_error_t err;
    json_t *obj = json_loadb(res->body, res->body_len, 0, &err);
    if (obj == NULL) {
        print_error("body is not JSON (%s): %s\n", err.text, res->body);
    }
    assert_non_null(obj);
    assert_non_null(strstr(res->head, "application/json"));
    return obj;
}

static const char *json_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    assert_non_null(v);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static json_int_t json_int(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    assert_non_null(v);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void assert_group(struct fixture *fx, const char *path, bool up)
{
    struct response *res = http(fx, "GET", path);
    assert_int_equal(res->status, up ? 200 : 503);
    json_t *obj = response_json(res);
    assert_string_equal(json_str(obj, "status"), up ? "UP" : "DOWN");
    json_decref(obj);
}

/* ------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------ */

/* Before startup finished: every probe fails, liveness still answers. */
static void test_not_started(void **state)
{
    struct fixture *fx = *state;
    fake_set(fx, false, 3, MANAGEMENT_ROLE_INACTIVE, MANAGEMENT_HEALTH_HEALTHY);
    assert_int_equal(http_status(fx, "/startup"), 503);
    assert_int_equal(http_status(fx, "/ready"), 503);
    assert_int_equal(http_status(fx, "/health"), 503);
    assert_group(fx, "/actuator/health/startup", false);
    assert_group(fx, "/actuator/health/readiness", false);
    assert_group(fx, "/actuator/health/status", false);
    assert_group(fx, "/actuator/health/liveness", true);
    assert_group(fx, "/actuator/health", false);
}

/* Started, but no partition has had a role yet: started and healthy, not
 * ready. */
static void test_started_not_ready(void **state)
{
    struct fixture *fx = *state;
    fake_set(fx, true, 3, MANAGEMENT_ROLE_INACTIVE, MANAGEMENT_HEALTH_HEALTHY);
    assert_int_equal(http_status(fx, "/startup"), 204);
    assert_int_equal(http_status(fx, "/ready"), 503);
    assert_int_equal(http_status(fx, "/health"), 204);
    assert_group(fx, "/actuator/health/startup", true);
    assert_group(fx, "/actuator/health/readiness", false);
    assert_group(fx, "/actuator/health/status", true);
}

/* Every partition installed and healthy: every probe passes; the 204s have
 * no body. */
static void test_ready_and_healthy(void **state)
{
    struct fixture *fx = *state;
    fake_set(fx, true, 3, MANAGEMENT_ROLE_FOLLOWER, MANAGEMENT_HEALTH_HEALTHY);
    struct response *res = http(fx, "GET", "/ready");
    assert_int_equal(res->status, 204);
    assert_int_equal(res->body_len, 0);
    assert_int_equal(http_status(fx, "/startup"), 204);
    assert_int_equal(http_status(fx, "/health"), 204);
    assert_group(fx, "/actuator/health/readiness", true);

    res = http(fx, "GET", "/actuator/health");
    assert_int_equal(res->status, 200);
    json_t *obj = response_json(res);
    assert_string_equal(json_str(obj, "status"), "UP");
    json_t *components = json_object_get(obj, "components");
    assert_non_null(components);
    const char *names[] = {"brokerStartup", "brokerReady", "brokerStatus",
                           "partitions"};
    for (size_t i = 0; i < 4; i++) {
        json_t *c = json_object_get(components, names[i]);
        assert_non_null(c);
        assert_string_equal(json_str(c, "status"), "UP");
    }
    json_t *p2 = json_object_get(
        json_object_get(json_object_get(components, "partitions"),
                        "components"),
        "2");
    assert_non_null(p2);
    assert_string_equal(json_str(json_object_get(p2, "details"), "role"),
                        "FOLLOWER");
    assert_true(json_is_array(json_object_get(obj, "groups")));
    json_decref(obj);
}

/* Zeebe: once every partition was installed, readiness does not go back
 * when a partition loses its role; /health does follow partition health. */
static void test_ready_latches_health_follows(void **state)
{
    struct fixture *fx = *state;
    fake_set(fx, true, 2, MANAGEMENT_ROLE_LEADER, MANAGEMENT_HEALTH_HEALTHY);
    assert_int_equal(http_status(fx, "/ready"), 204);
    fake_set(fx, true, 2, MANAGEMENT_ROLE_INACTIVE,
             MANAGEMENT_HEALTH_UNHEALTHY);
    assert_int_equal(http_status(fx, "/ready"), 204);
    assert_int_equal(http_status(fx, "/health"), 503);
    assert_group(fx, "/actuator/health/status", false);
    assert_group(fx, "/actuator/health", false);

    /* A partition the broker did not host before is not installed. */
    fake_set(fx, true, 3, MANAGEMENT_ROLE_INACTIVE, MANAGEMENT_HEALTH_HEALTHY);
    assert_int_equal(http_status(fx, "/ready"), 503);

    /* The broker's own veto (shutting down). */
    fake_set(fx, true, 2, MANAGEMENT_ROLE_LEADER, MANAGEMENT_HEALTH_HEALTHY);
    pthread_mutex_lock(&fx->mutex);
    fx->fake.ready = false;
    pthread_mutex_unlock(&fx->mutex);
    assert_int_equal(http_status(fx, "/ready"), 503);
}

/* /actuator/partitions: Zeebe's keys plus the raft numbers. */
static void test_partitions_json(void **state)
{
    struct fixture *fx = *state;
    fake_set(fx, true, 3, MANAGEMENT_ROLE_FOLLOWER, MANAGEMENT_HEALTH_HEALTHY);
    pthread_mutex_lock(&fx->mutex);
    fx->fake.partitions[0].role = MANAGEMENT_ROLE_LEADER;
    fx->fake.partitions[0].snapshot_index = 80;
    fx->fake.partitions[0].snapshot_term = 2;
    fx->fake.partitions[2].role = MANAGEMENT_ROLE_INACTIVE;
    fx->fake.partitions[2].health = MANAGEMENT_HEALTH_DEAD;
    pthread_mutex_unlock(&fx->mutex);

    struct response *res = http(fx, "GET", "/actuator/partitions");
    assert_int_equal(res->status, 200);
    json_t *obj = response_json(res);
    assert_int_equal(json_object_size(obj), 3);

    json_t *p1 = json_object_get(obj, "1");
    assert_non_null(p1);
    assert_string_equal(json_str(p1, "role"), "LEADER");
    assert_int_equal(json_int(p1, "processedPosition"), 90);
    assert_string_equal(json_str(p1, "snapshotId"), "80-2-80-80");
    assert_int_equal(json_int(p1, "processedPositionInSnapshot"), 80);
    assert_string_equal(json_str(p1, "streamProcessorPhase"), "PROCESSING");
    assert_string_equal(json_str(p1, "health"), "HEALTHY");
    assert_int_equal(json_int(p1, "term"), 3);
    assert_int_equal(json_int(p1, "commitIndex"), 100);
    assert_int_equal(json_int(p1, "appliedIndex"), 90);
    assert_int_equal(json_int(p1, "lastIndex"), 110);
    assert_int_equal(json_int(p1, "snapshotIndex"), 80);
    assert_int_equal(json_int(p1, "snapshotTerm"), 2);
    assert_null(json_object_get(p1, "exporterPhase"));

    json_t *p2 = json_object_get(obj, "2");
    assert_string_equal(json_str(p2, "role"), "FOLLOWER");
    assert_string_equal(json_str(p2, "streamProcessorPhase"), "REPLAY");
    assert_null(json_object_get(p2, "snapshotId"));
    assert_null(json_object_get(p2, "processedPositionInSnapshot"));
    assert_int_equal(json_int(p2, "processedPosition"), 91);

    json_t *p3 = json_object_get(obj, "3");
    assert_string_equal(json_str(p3, "role"), "INACTIVE");
    assert_string_equal(json_str(p3, "health"), "DEAD");
    assert_string_equal(json_str(p3, "streamProcessorPhase"), "FAILED");
    json_decref(obj);

    /* A broker hosting nothing: an empty map. */
    fake_set(fx, true, 0, MANAGEMENT_ROLE_INACTIVE, MANAGEMENT_HEALTH_HEALTHY);
    res = http(fx, "GET", "/actuator/partitions");
    assert_int_equal(res->status, 200);
    obj = response_json(res);
    assert_true(json_is_object(obj));
    assert_int_equal(json_object_size(obj), 0);
    json_decref(obj);
}

static void assert_error_body(struct response *res, int status,
                              const char *path)
{
    assert_int_equal(res->status, status);
    json_t *obj = response_json(res);
    assert_int_equal(json_int(obj, "status"), status);
    assert_true(strlen(json_str(obj, "error")) > 0);
    assert_true(strlen(json_str(obj, "message")) > 0);
    assert_string_equal(json_str(obj, "path"), path);
    json_decref(obj);
}

static void test_not_found_and_method(void **state)
{
    struct fixture *fx = *state;
    fake_set(fx, true, 1, MANAGEMENT_ROLE_LEADER, MANAGEMENT_HEALTH_HEALTHY);
    assert_error_body(http(fx, "GET", "/nope"), 404, "/nope");
    assert_error_body(http(fx, "GET", "/actuator/partitions/1/x"), 404,
                      "/actuator/partitions/1/x");
    struct response *res = http(fx, "POST", "/ready");
    assert_error_body(res, 405, "/ready");
    for (char *c = res->head; *c != '\0'; c++) {
        if (*c >= 'A' && *c <= 'Z') {
            *c = (char)(*c - 'A' + 'a');
        }
    }
    assert_non_null(strstr(res->head, "allow: get, head"));
    assert_error_body(http(fx, "DELETE", "/actuator/partitions"), 405,
                      "/actuator/partitions");
    /* A query string does not change the route. */
    assert_int_equal(http_status(fx, "/ready?x=1"), 204);
    /* HEAD: the status without a body. */
    res = http(fx, "HEAD", "/actuator/health");
    assert_int_equal(res->status, 200);
    assert_int_equal(res->body_len, 0);
}

/* The provider cannot report: 503 with a JSON reason, also for the 8.4
 * probes (which otherwise have empty bodies). */
static void test_provider_failure(void **state)
{
    struct fixture *fx = *state;
    fake_set(fx, true, 1, MANAGEMENT_ROLE_LEADER, MANAGEMENT_HEALTH_HEALTHY);
    pthread_mutex_lock(&fx->mutex);
    fx->fail_code = -7;
    pthread_mutex_unlock(&fx->mutex);
    assert_error_body(http(fx, "GET", "/ready"), 503, "/ready");
    assert_error_body(http(fx, "GET", "/actuator/partitions"), 503,
                      "/actuator/partitions");
    assert_group(fx, "/actuator/health/liveness", true);

    /* An impossible snapshot is refused the same way. */
    pthread_mutex_lock(&fx->mutex);
    fx->fail_code = 0;
    fx->fake.partitions[0].partition_id = 0;
    pthread_mutex_unlock(&fx->mutex);
    assert_error_body(http(fx, "GET", "/health"), 503, "/health");
}

/* Bytes that are not HTTP get a 400; the server keeps serving. */
static void test_garbage(void **state)
{
    struct fixture *fx = *state;
    fake_set(fx, true, 1, MANAGEMENT_ROLE_LEADER, MANAGEMENT_HEALTH_HEALTHY);
    const char *inputs[] = {
        "\x01\x02\x03\xff garbage\r\n\r\n",
        "GET\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        static struct response res;
        memset(&res, 0, sizeof(res));
        int fd = client_connect(fx->port);
        client_send(fd, inputs[i], strlen(inputs[i]));
        client_receive(fd, &res);
        close(fd);
        assert_int_equal(res.status, 400);
        assert_int_equal(http_status(fx, "/startup"), 204);
    }
    /* A client that connects and leaves at once. */
    close(client_connect(fx->port));
    assert_int_equal(http_status(fx, "/startup"), 204);
}

/* Keep-alive: two requests on one connection. */
static void test_keep_alive(void **state)
{
    struct fixture *fx = *state;
    fake_set(fx, true, 1, MANAGEMENT_ROLE_LEADER, MANAGEMENT_HEALTH_HEALTHY);
    const char *two = "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /nope HTTP/1.1\r\nHost: x\r\n"
                      "Connection: close\r\n\r\n";
    int fd = client_connect(fx->port);
    client_send(fd, two, strlen(two));
    static struct response res;
    client_receive(fd, &res);
    close(fd);
    assert_int_equal(res.status, 204);
    /* The second response follows the first in the same stream. */
    assert_non_null(strstr(res.body, "HTTP/1.1 404"));
}

/* connections_max = 2: a third simultaneous connection is refused with a
 * JSON 503; once one closes, requests succeed again. Teardown then closes
 * the server with an idle connection still open. */
static void test_connection_limit(void **state)
{
    struct fixture *fx = *state;
    fake_set(fx, true, 1, MANAGEMENT_ROLE_LEADER, MANAGEMENT_HEALTH_HEALTHY);
    int a = client_connect(fx->port);
    int b = client_connect(fx->port);
    /* Make sure both are accepted: a request on each, kept alive. */
    const char *req = "GET /startup HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[1024];
    client_send(a, req, strlen(req));
    assert_true(recv(a, buf, sizeof(buf), 0) > 0);
    client_send(b, req, strlen(req));
    assert_true(recv(b, buf, sizeof(buf), 0) > 0);

    struct response *res = http(fx, "GET", "/startup");
    assert_int_equal(res->status, 503);
    json_t *obj = response_json(res);
    assert_string_equal(json_str(obj, "message"), "too many connections");
    json_decref(obj);

    close(a);
    int status = 0;
    for (int attempt = 0; attempt < 100 && status != 204; attempt++) {
        status = http_status(fx, "/startup");
        if (status != 204) {
            struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(status, 204);
    fx->leftover_fd = b; /* left open: the server must close it */
}

/* Argument checks, a port in use, start twice, close without start. */
static void test_lifecycle_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct management m = {0};
    struct management_provider none = {0};
    struct management_provider p = {.data = NULL, .status = fake_status};
    assert_int_equal(management_init(NULL, &m, NULL, &p), MANAGEMENT_E_INVALID);
    assert_int_equal(management_init(&loop, &m, NULL, &none),
                     MANAGEMENT_E_INVALID);
    struct management_options bad = {.host = "no-such-host.invalid"};
    assert_int_equal(management_init(&loop, &m, &bad, &p),
                     MANAGEMENT_E_ADDRESS);
    assert_string_equal(management_strerror(MANAGEMENT_E_ADDRESS),
                        "the listen address does not resolve");

    /* Occupy a port with a first server, then try to bind it again. */
    struct management first = {0};
    struct management_options opts = {.host = "127.0.0.1"};
    assert_int_equal(management_init(&loop, &first, &opts, &p), 0);
    assert_int_equal(management_start(&first), 0);
    assert_int_equal(management_start(&first), MANAGEMENT_E_STATE);
    opts.port = management_bound_port(&first);
    struct management second = {0};
    assert_int_equal(management_init(&loop, &second, &opts, &p), 0);
    assert_int_equal(management_start(&second), MANAGEMENT_E_LISTEN);
    assert_non_null(strstr(management_errmsg(&second), "cannot listen"));
    assert_int_equal(management_bound_port(&second), 0);

    /* Never started. */
    struct management third = {0};
    assert_int_equal(management_init(&loop, &third, NULL, &p), 0);

    management_close(&first, NULL);
    management_close(&second, NULL);
    management_close(&third, NULL);
    management_close(&third, NULL); /* ignored */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_null(first.impl);
    assert_null(third.impl);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ------------------------------------------------------------------------
 * Cluster operations
 * ------------------------------------------------------------------------ */

/* A {"message": ...} body containing part, with status. */
static void assert_message(struct response *res, int status, const char *part)
{
    if (res->status != status) {
        print_error("expected %d, got %d: %s\n", status, res->status,
                    res->body);
    }
    assert_int_equal(res->status, status);
    json_t *obj = response_json(res);
    const char *m = json_str(obj, "message");
    if (strstr(m, part) == NULL) {
        print_error("message '%s' lacks '%s'\n", m, part);
        fail();
    }
    json_decref(obj);
}

static struct management_change_request last_request(struct fixture *fx)
{
    pthread_mutex_lock(&fx->mutex);
    struct management_change_request r = fx->last_req;
    pthread_mutex_unlock(&fx->mutex);
    return r;
}

static int change_calls(struct fixture *fx)
{
    pthread_mutex_lock(&fx->mutex);
    int n = fx->change_calls;
    pthread_mutex_unlock(&fx->mutex);
    return n;
}

/* POST /actuator/cluster/brokers: ids as numbers and strings, query
 * flags, the provider's 202 body and its 4xx answers; parse errors never
 * reach the provider. */
static void test_scale_route(void **state)
{
    struct fixture *fx = *state;
    fake_reply(fx, 202, "{\"changeId\":2,\"plannedChanges\":[]}", NULL);
    struct response *res =
        post_json(fx, "/actuator/cluster/brokers?force=true&dryRun=true",
                  "[\"0\", \"2\", 4, 6, 2]");
    assert_int_equal(res->status, 202);
    json_t *obj = response_json(res);
    assert_int_equal(json_int(obj, "changeId"), 2);
    json_decref(obj);
    struct management_change_request r = last_request(fx);
    assert_int_equal(r.kind, MANAGEMENT_REQUEST_SCALE);
    assert_true(r.force);
    assert_true(r.dry_run);
    assert_int_equal(r.replication_factor, 0);
    assert_int_equal(r.broker_count, 5);
    assert_int_equal(r.brokers[0], 0);
    assert_int_equal(r.brokers[1], 2);
    assert_int_equal(r.brokers[4], 2);
    res = post_json(fx, "/actuator/cluster/brokers?replicationFactor=4",
                    "[0,1,2,3,4,5,6,7]");
    assert_int_equal(res->status, 202);
    r = last_request(fx);
    assert_false(r.force);
    assert_false(r.dry_run);
    assert_int_equal(r.replication_factor, 4);
    assert_int_equal(r.broker_count, 8);

    /* The provider's errors pass through with their message. */
    fake_reply(fx, 409, NULL,
               "Cannot apply configuration change. Another configuration "
               "change [id=2] is in progress.");
    assert_message(post_json(fx, "/actuator/cluster/brokers", "[0]"), 409,
                   "Another configuration change");
    fake_reply(fx, 400, "{\"message\":\"no replicas\"}", NULL);
    assert_message(post_json(fx, "/actuator/cluster/brokers", "[0]"), 400,
                   "no replicas");
    fake_reply(fx, 504, NULL, NULL);
    assert_message(post_json(fx, "/actuator/cluster/brokers", "[0]"), 504,
                   "Gateway Timeout");

    /* Parse errors: answered here, the provider is not called. */
    fake_reply(fx, 202, NULL, NULL);
    assert_message(post_json(fx, "/actuator/cluster/brokers", "[0,"), 400,
                   "malformed JSON");
    assert_message(post_json(fx, "/actuator/cluster/brokers", "{\"a\":1}"), 400,
                   "JSON array of broker ids");
    assert_message(post_json(fx, "/actuator/cluster/brokers", "[0,\"x\"]"), 400,
                   "index 1");
    assert_message(post_json(fx, "/actuator/cluster/brokers", "[-1]"), 400,
                   "index 0");
    assert_message(post_json(fx, "/actuator/cluster/brokers", "[1.5]"), 400,
                   "index 0");
    assert_message(
        http_body(fx, "POST", "/actuator/cluster/brokers", NULL, "", 0), 400,
        "JSON array");
    assert_message(http_body(fx, "POST", "/actuator/cluster/brokers",
                             "text/plain", "[0]", 3),
                   415, "application/json");
    assert_message(
        post_json(fx, "/actuator/cluster/brokers?dryRun=maybe", "[0]"), 400,
        "'dryRun' must be true or false");
    assert_message(
        post_json(fx, "/actuator/cluster/brokers?replicationFactor=0", "[0]"),
        400, "replicationFactor");
    assert_message(
        post_json(fx, "/actuator/cluster/brokers?replicationFactor=x", "[0]"),
        400, "replicationFactor");
    {
        static char many[4096];
        size_t n = 0;
        many[n++] = '[';
        for (int k = 0; k <= MANAGEMENT_BROKERS_MAX; k++) {
            n += (size_t)snprintf(many + n, sizeof(many) - n, "%s%d",
                                  k > 0 ? "," : "", k);
        }
        many[n++] = ']';
        many[n] = '\0';
        assert_message(post_json(fx, "/actuator/cluster/brokers", many), 400,
                       "at most");
    }
    assert_int_equal(change_calls(fx), 0);
    struct response *m = http(fx, "GET", "/actuator/cluster/brokers");
    assert_int_equal(m->status, 405);
}

/* Single brokers, partitions (both path forms), changes, 404/405/501. */
static void test_broker_partition_change_routes(void **state)
{
    struct fixture *fx = *state;
    fake_reply(fx, 202, "{\"changeId\":3}", NULL);
    assert_int_equal(
        http_body(fx, "POST", "/actuator/cluster/brokers/5", NULL, "", 0)
            ->status,
        202);
    struct management_change_request r = last_request(fx);
    assert_int_equal(r.kind, MANAGEMENT_REQUEST_BROKER_ADD);
    assert_int_equal(r.broker_id, 5);
    assert_int_equal(http(fx, "DELETE", "/actuator/cluster/brokers/5")->status,
                     202);
    assert_int_equal(last_request(fx).kind, MANAGEMENT_REQUEST_BROKER_REMOVE);
    assert_int_equal(post_json(fx, "/actuator/cluster/brokers/3/partitions/2",
                               "{\"priority\":3}")
                         ->status,
                     202);
    r = last_request(fx);
    assert_int_equal(r.kind, MANAGEMENT_REQUEST_PARTITION_JOIN);
    assert_int_equal(r.broker_id, 3);
    assert_int_equal(r.partition_id, 2);
    assert_int_equal(r.priority, 3);
    assert_int_equal(
        http(fx, "DELETE", "/actuator/cluster/partitions/7/brokers/1")->status,
        202);
    r = last_request(fx);
    assert_int_equal(r.kind, MANAGEMENT_REQUEST_PARTITION_LEAVE);
    assert_int_equal(r.broker_id, 1);
    assert_int_equal(r.partition_id, 7);
    assert_int_equal(http(fx, "DELETE", "/actuator/cluster/changes/12")->status,
                     202);
    r = last_request(fx);
    assert_int_equal(r.kind, MANAGEMENT_REQUEST_CHANGE_CANCEL);
    assert_int_equal(r.change_id, 12);

    fake_reply(fx, 202, NULL, NULL);
    assert_message(http(fx, "POST", "/actuator/cluster/brokers/x"), 400,
                   "broker id 'x'");
    assert_message(http(fx, "POST", "/actuator/cluster/brokers/99999999999"),
                   400, "broker id");
    assert_message(
        http(fx, "DELETE", "/actuator/cluster/brokers/1/partitions/p"), 400,
        "partition id 'p'");
    assert_message(post_json(fx, "/actuator/cluster/brokers/1/partitions/1",
                             "{\"priority\":0}"),
                   400, "priority");
    assert_message(post_json(fx, "/actuator/cluster/brokers/1/partitions/1",
                             "{\"weight\":1}"),
                   400, "priority");
    assert_message(http(fx, "DELETE", "/actuator/cluster/changes/-1"), 400,
                   "change id");
    assert_int_equal(change_calls(fx), 0);

    /* 501 (plain text) as Zeebe, 404 and 405. */
    struct response *res = http(fx, "POST", "/actuator/cluster/partitions");
    assert_int_equal(res->status, 501);
    assert_non_null(strstr(res->head, "text/plain"));
    assert_int_equal(http(fx, "POST", "/actuator/cluster/changes")->status,
                     501);
    assert_int_equal(
        http(fx, "DELETE", "/actuator/cluster/changes/3?dryRun=true")->status,
        501);
    assert_error_body(http(fx, "GET", "/actuator/cluster/nope"), 404,
                      "/actuator/cluster/nope");
    assert_error_body(http(fx, "POST", "/actuator/cluster/brokers/1/x/2"), 404,
                      "/actuator/cluster/brokers/1/x/2");
    assert_error_body(http(fx, "GET", "/actuator/cluster/brokers/1"), 405,
                      "/actuator/cluster/brokers/1");
    assert_error_body(http(fx, "POST", "/actuator/cluster/changes/1"), 405,
                      "/actuator/cluster/changes/1");
    assert_int_equal(change_calls(fx), 0);

    /* A provider failure is a 500 with a message. */
    pthread_mutex_lock(&fx->mutex);
    fx->change_code = -5;
    pthread_mutex_unlock(&fx->mutex);
    assert_message(http(fx, "POST", "/actuator/cluster/brokers/1"), 500,
                   "code -5");
}

/* Exporters, exporting (Zeebe 8.4.7+ envelope) and rebalance. */
static void test_exporter_routes(void **state)
{
    struct fixture *fx = *state;
    fake_reply(fx, 200, "[{\"exporterId\":\"region0\",\"status\":\"ENABLED\"}]",
               NULL);
    struct response *res = http(fx, "GET", "/actuator/exporters");
    assert_int_equal(res->status, 200);
    assert_string_equal(
        res->body, "[{\"exporterId\":\"region0\",\"status\":\"ENABLED\"}]");
    assert_int_equal(last_request(fx).kind, MANAGEMENT_REQUEST_EXPORTERS_GET);

    fake_reply(fx, 202, "{\"changeId\":4}", NULL);
    assert_int_equal(
        http(fx, "POST", "/actuator/exporters/region1/disable")->status, 202);
    struct management_change_request r = last_request(fx);
    assert_int_equal(r.kind, MANAGEMENT_REQUEST_EXPORTER_DISABLE);
    assert_string_equal(r.exporter, "region1");
    assert_int_equal(post_json(fx,
                               "/actuator/exporters/region1/enable?dryRun=true",
                               "{\"initializeFrom\" : \"region0\"}")
                         ->status,
                     202);
    r = last_request(fx);
    assert_int_equal(r.kind, MANAGEMENT_REQUEST_EXPORTER_ENABLE);
    assert_true(r.dry_run);
    assert_string_equal(r.initialize_from, "region0");
    assert_int_equal(
        http(fx, "POST", "/actuator/exporters/region1/enable")->status, 202);
    assert_string_equal(last_request(fx).initialize_from, "");

    fake_reply(fx, 202, NULL, NULL);
    assert_message(post_json(fx, "/actuator/exporters/region1/enable",
                             "{\"initializeFrom\":3}"),
                   400, "initializeFrom");
    assert_message(post_json(fx, "/actuator/exporters/region1/enable", "[]"),
                   400, "initializeFrom");
    assert_int_equal(change_calls(fx), 0);
    assert_error_body(http(fx, "POST", "/actuator/exporters/region1/pause"),
                      404, "/actuator/exporters/region1/pause");
    assert_error_body(http(fx, "GET", "/actuator/exporters/region1/enable"),
                      405, "/actuator/exporters/region1/enable");
    assert_error_body(http(fx, "POST", "/actuator/exporters"), 405,
                      "/actuator/exporters");

    /* Exporting: HTTP 200 and the WebEndpointResponse envelope. */
    fake_reply(fx, 204, NULL, NULL);
    res = http(fx, "POST", "/actuator/exporting/pause");
    assert_int_equal(res->status, 200);
    assert_string_equal(res->body,
                        "{\"body\":null,\"status\":204,\"contentType\":null}");
    assert_int_equal(last_request(fx).kind, MANAGEMENT_REQUEST_EXPORTING_PAUSE);
    assert_int_equal(
        http(fx, "POST", "/actuator/exporting/pause?soft=true")->status, 200);
    assert_int_equal(last_request(fx).kind,
                     MANAGEMENT_REQUEST_EXPORTING_SOFT_PAUSE);
    assert_int_equal(http(fx, "POST", "/actuator/exporting/resume")->status,
                     200);
    assert_int_equal(last_request(fx).kind,
                     MANAGEMENT_REQUEST_EXPORTING_RESUME);
    fake_reply(fx, 500, NULL, "partition 3 did not answer");
    res = http(fx, "POST", "/actuator/exporting/resume");
    assert_int_equal(res->status, 200);
    assert_string_equal(res->body, "{\"body\":\"partition 3 did not answer\","
                                   "\"status\":500,\"contentType\":null}");
    assert_error_body(http(fx, "POST", "/actuator/exporting/stop"), 404,
                      "/actuator/exporting/stop");
    assert_error_body(http(fx, "GET", "/actuator/exporting/pause"), 405,
                      "/actuator/exporting/pause");

    fake_reply(fx, 200, NULL, NULL);
    res = http(fx, "POST", "/actuator/rebalance");
    assert_int_equal(res->status, 200);
    assert_int_equal(res->body_len, 0);
    assert_int_equal(last_request(fx).kind, MANAGEMENT_REQUEST_REBALANCE);
    assert_error_body(http(fx, "GET", "/actuator/rebalance"), 405,
                      "/actuator/rebalance");
}

/* A body above MANAGEMENT_BODY_MAX is refused by h2o (413) unseen. */
static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (bounded) until the loop thread ran finish_cb n times. */
static void wait_finished(struct fixture *fx, int n)
{
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&fx->mutex);
        int done = fx->finished;
        pthread_mutex_unlock(&fx->mutex);
        if (done >= n) {
            return;
        }
        sleep_ms(10);
    }
    fail_msg("finish_cb did not run");
}

/* change() may answer later (a request forwarded to the coordinator):
 * nothing is sent until management_reply_finish(), whose reply then goes
 * out as a synchronous one would; a ticket whose connection closed
 * meanwhile is refused and its body released. */
static void test_deferred_reply(void **state)
{
    struct fixture *fx = *state;
    static const char req[] =
        "POST /actuator/cluster/brokers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Connection: close\r\nContent-Type: application/json\r\n"
        "Content-Length: 5\r\n\r\n[1,2]";
    struct response res;
    char byte;

    fake_reply(fx, 202, "{\"changeId\": 9}", NULL);
    pthread_mutex_lock(&fx->mutex);
    fx->later = true;
    pthread_mutex_unlock(&fx->mutex);

    int fd = client_connect(fx->port);
    client_send(fd, req, sizeof(req) - 1);
    /* Nothing comes before the reply is finished. */
    struct timeval shortwait = {.tv_sec = 0, .tv_usec = 300 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &shortwait, sizeof(shortwait));
    assert_true(recv(fd, &byte, 1, MSG_PEEK) < 0);
    struct timeval tv = {.tv_sec = TEST_IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(change_calls(fx), 1);
    assert_int_equal(uv_async_send(&fx->finish), 0);
    memset(&res, 0, sizeof(res));
    client_receive(fd, &res);
    close(fd);
    wait_finished(fx, 1);
    assert_int_equal(fx->finish_rv, 0);
    assert_int_equal(res.status, 202);
    json_t *body = response_json(&res);
    assert_int_equal(json_int(body, "changeId"), 9);
    json_decref(body);

    /* The same ticket again: refused (answered already). */
    assert_int_equal(uv_async_send(&fx->finish), 0);
    wait_finished(fx, 2);
    assert_int_equal(fx->finish_rv, MANAGEMENT_E_STATE);

    /* The client goes away before the answer: finishing is harmless. */
    fake_reply(fx, 400, NULL, "too late");
    fd = client_connect(fx->port);
    client_send(fd, req, sizeof(req) - 1);
    for (int i = 0; i < 500 && change_calls(fx) == 0; i++) {
        sleep_ms(10);
    }
    assert_int_equal(change_calls(fx), 1);
    close(fd);
    sleep_ms(100);
    assert_int_equal(uv_async_send(&fx->finish), 0);
    wait_finished(fx, 3);
    assert_true(fx->finish_rv == 0 || fx->finish_rv == MANAGEMENT_E_STATE);

    /* Still waiting when the server closes: answered 503 (teardown then
     * checks the close completes with no handle left). */
    fake_reply(fx, 202, NULL, NULL);
    fd = client_connect(fx->port);
    client_send(fd, req, sizeof(req) - 1);
    for (int i = 0; i < 500 && change_calls(fx) == 0; i++) {
        sleep_ms(10);
    }
    assert_int_equal(change_calls(fx), 1);
    assert_int_equal(uv_async_send(&fx->stop), 0);
    memset(&res, 0, sizeof(res));
    client_receive(fd, &res);
    close(fd);
    assert_int_equal(res.status, 503);
}

static int teardown_stopped(void **state)
{
    struct fixture *fx = *state;
    runner_wait();
    assert_true(fx->closed);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    pthread_mutex_destroy(&fx->mutex);
    free(fx);
    return 0;
}

static void test_body_limit(void **state)
{
    struct fixture *fx = *state;
    size_t len = MANAGEMENT_BODY_MAX + 1;
    char *body = malloc(len);
    assert_non_null(body);
    memset(body, ' ', len);
    body[0] = '[';
    body[len - 1] = ']';
    fake_reply(fx, 202, NULL, NULL);
    int fd = client_connect(fx->port);
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST /actuator/cluster/brokers HTTP/1.1\r\nHost: x\r\n"
                     "Connection: close\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     len);
    client_send(fd, head, (size_t)n);
    /* h2o may answer before reading the body; the send may then fail. */
    (void)send(fd, body, len, MSG_NOSIGNAL);
    static struct response res;
    client_receive(fd, &res);
    close(fd);
    assert_int_equal(res.status, 413);
    assert_int_equal(change_calls(fx), 0);
    free(body);
}

/* /actuator/partitions carries the exporter phase when the broker sets
 * one. */
static void test_partitions_exporter_phase(void **state)
{
    struct fixture *fx = *state;
    fake_set(fx, true, 2, MANAGEMENT_ROLE_LEADER, MANAGEMENT_HEALTH_HEALTHY);
    pthread_mutex_lock(&fx->mutex);
    snprintf(fx->fake.partitions[0].exporter_phase,
             sizeof(fx->fake.partitions[0].exporter_phase), "SOFT_PAUSED");
    fx->fake.partitions[0].exported_position = 77;
    pthread_mutex_unlock(&fx->mutex);
    json_t *obj = response_json(http(fx, "GET", "/actuator/partitions"));
    json_t *p1 = json_object_get(obj, "1");
    json_t *p2 = json_object_get(obj, "2");
    assert_string_equal(json_str(p1, "exporterPhase"), "SOFT_PAUSED");
    assert_int_equal(json_int(p1, "exportedPosition"), 77);
    assert_null(json_object_get(p2, "exporterPhase"));
    assert_null(json_object_get(p2, "exportedPosition"));
    json_decref(obj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_not_started, setup, teardown),
        cmocka_unit_test_setup_teardown(test_started_not_ready, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ready_and_healthy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ready_latches_health_follows,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_partitions_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_method, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_provider_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_reply, setup,
                                        teardown_stopped),
        cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit,
                                        setup_two_connections, teardown),
        cmocka_unit_test(test_lifecycle_errors),
        cmocka_unit_test_setup_teardown(test_scale_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_partition_change_routes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_exporter_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partitions_exporter_phase, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
