/* test_elasticsearch.c: the "elasticsearch" exporter, run by a director,
 * against es_server.py (a test bulk API server that checks every request
 * against the documented format; $ES_SERVER, run with $PYTHON).
 *
 * Scenario: 95 events in bulks of 10 plus a delayed flush; templates
 * first; basic auth; index names, ids, routing and sequences checked by
 * the server; the metadata counters; bulk failures (HTTP 503 and item
 * errors) retried without loss; commands filtered out but still
 * advancing the position; a full replay from -1 leaving the same
 * documents (idempotent).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "exporter/director.h"
#include "proto/record.pb-c.h"
#include "test_host.h"

static pid_t server_pid;
static int server_stdin = -1;
static int server_port;

/* Starts es_server.py and reads its port (10 s at most). */
static int server_start(void **state)
{
    (void)state;
    const char *script = getenv("ES_SERVER");
    const char *python = getenv("PYTHON");
    if (script == NULL) {
        fprintf(stderr, "ES_SERVER is not set\n");
        return -1;
    }
    if (python == NULL) {
        python = "python3";
    }
    int out[2];
    int in[2];
    if (pipe(out) != 0 || pipe(in) != 0) {
        return -1;
    }
    server_pid = fork();
    if (server_pid < 0) {
        return -1;
    }
    if (server_pid == 0) {
        dup2(out[1], 1);
        dup2(in[0], 0);
        close(out[0]);
        close(in[1]);
        execlp(python, python, script, "--prefix", "tandem-record", "--user",
               "elastic", "--password", "s3cret", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    server_stdin = in[1];
    struct pollfd p = {.fd = out[0], .events = POLLIN};
    char line[32] = {0};
    size_t n = 0;
    while (n < sizeof(line) - 1 && strchr(line, '\n') == NULL) {
        if (poll(&p, 1, 10000) <= 0) {
            break;
        }
        ssize_t r = read(out[0], line + n, sizeof(line) - 1 - n);
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
    }
    close(out[0]);
    server_port = atoi(line);
    if (server_port <= 0) {
        fprintf(stderr, "es_server.py did not report a port\n");
        return -1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int server_stop(void **state)
{
    (void)state;
    if (server_stdin >= 0) {
        close(server_stdin); /* the server exits when stdin closes */
    }
    for (int i = 0; i < 100; i++) {
        if (waitpid(server_pid, NULL, WNOHANG) == server_pid) {
            return 0;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    return 0;
}

static size_t collect(char *p, size_t size, size_t n, void *data)
{
    json_t **buf = data;
    char *prev = (char *)json_string_value(*buf);
    size_t old = prev != NULL ? strlen(prev) : 0;
    char *joined = malloc(old + size * n + 1);
    memcpy(joined, prev != NULL ? prev : "", old);
    memcpy(joined + old, p, size * n);
    joined[old + size * n] = '\0';
    json_decref(*buf);
    *buf = json_string(joined);
    free(joined);
    return size * n;
}

/* A request to the server's control API; returns the parsed answer. */
static json_t *server_call(const char *method, const char *path)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", server_port, path);
    CURL *c = curl_easy_init();
    json_t *buf = json_string("");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    json_t *o = json_loads(json_string_value(buf), 0, NULL);
    json_decref(buf);
    assert_non_null(o);
    return o;
}

static json_int_t state_int(json_t *s, const char *k)
{
    json_t *v = json_object_get(s, k);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void assert_no_violations(json_t *s)
{
    json_t *errors = json_object_get(s, "errors");
    if (json_array_size(errors) != 0) {
        char *text = json_dumps(errors, 0);
        fail_msg("server saw format violations: %s", text);
    }
}

static bool array_has(json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (strcmp(json_string_value(v), s) == 0) {
            return true;
        }
    }
    return false;
}

static void add_es(struct test_host *h, int64_t position)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", server_port);
    const struct exporter_arg args[] = {
        {"url", url},
        {"index.prefix", "tandem-record"},
        {"bulk.size", "10"},
        {"bulk.delay", "100ms"},
        {"authentication.username", "elastic"},
        {"authentication.password", "s3cret"},
        {"requestTimeoutMs", "5000"},
    };
    struct exporter_type t;
    char err[EXPORTER_ERRMSG_MAX];
    assert_int_equal(
        exporter_type_load(&t, "es", "elasticsearch", NULL, err, sizeof(err)),
        0);
    struct exporter_director_exporter e = {
        .id = "es", .def = t.def, .position = position};
    assert_int_equal(exporter_type_configure(
                         &t, "es", 1, args, sizeof(args) / sizeof(args[0]),
                         &e.instance, &e.filter, err, sizeof(err)),
                     0);
    assert_int_equal(exporter_director_add(&h->director, &e), 0);
}

static bool cond_acked(struct test_host *h, void *arg)
{
    int64_t *want = arg;
    struct test_host_ack *a = test_host_ack(h, "es");
    return a != NULL && a->position >= *want;
}

static struct test_host *host_new(void)
{
    struct test_host *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    struct exporter_director_options o = {
        .partition_id = 1, .backoff_ms_min = 20, .backoff_ms_max = 200};
    test_host_init(h, &o);
    return h;
}

static void wait_acked(struct test_host *h, size_t index)
{
    int64_t want = h->positions[index];
    if (!test_host_run_until(h, cond_acked, &want, 20000)) {
        struct test_host_ack *a = test_host_ack(h, "es");
        fail_msg("record %zu (position %lld) not acknowledged; last %lld",
                 index, (long long)want,
                 a != NULL ? (long long)a->position : -2LL);
    }
}

static void append_command(struct test_host *h)
{
    size_t len = 0;
    uint8_t *b =
        test_host_record_new(TANDEM__RECORD__RECORD_TYPE__COMMAND,
                             TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE, 0, 0,
                             1711584000000LL, &len);
    test_host_append(h, b, len);
}

static void test_export_retry_replay(void **state)
{
    (void)state;
    struct test_host *h = host_new();
    add_es(h, -1);
    assert_int_equal(exporter_director_start(&h->director), 0);
    test_host_append_events(h, 95);
    wait_acked(h, 94);

    json_t *s = server_call("GET", "/_test/state");
    assert_no_violations(s);
    assert_int_equal(state_int(s, "docs"), 95);
    json_t *bulk_records = json_object_get(s, "bulk_records");
    size_t i;
    json_t *v;
    json_array_foreach(bulk_records, i, v)
    {
        assert_true(json_integer_value(v) <= 10);
    }
    assert_true(
        array_has(json_object_get(s, "component_templates"), "tandem-record"));
    assert_true(array_has(json_object_get(s, "index_templates"),
                          "tandem-record_process-instance_8.4.5"));
    assert_true(array_has(json_object_get(s, "index_templates"),
                          "tandem-record_job_8.4.5"));
    assert_false(array_has(json_object_get(s, "index_templates"),
                           "tandem-record_job-batch_8.4.5"));
    assert_true(array_has(json_object_get(s, "indices"),
                          "tandem-record_job_8.4.5_2024-03-28"));
    assert_true(array_has(json_object_get(s, "ids"), "1-65536"));
    json_t *seq = json_object_get(s, "max_sequence");
    assert_int_equal(json_integer_value(json_object_get(seq, "JOB")), 47);
    assert_int_equal(
        json_integer_value(json_object_get(seq, "PROCESS_INSTANCE")), 48);
    json_decref(s);
    /* The metadata holds the counters behind the sequences. */
    json_t *meta = json_loads(test_host_ack(h, "es")->metadata, 0, NULL);
    assert_non_null(meta);
    json_t *counters = json_object_get(meta, "recordCountersByValueType");
    assert_int_equal(json_integer_value(json_object_get(counters, "JOB")), 47);
    assert_int_equal(
        json_integer_value(json_object_get(counters, "PROCESS_INSTANCE")), 48);
    json_decref(meta);

    /* Failing bulks are retried with the whole buffer. */
    json_decref(server_call("POST", "/_test/fail?count=2&mode=http"));
    test_host_append_events(h, 10);
    wait_acked(h, 104);
    json_decref(server_call("POST", "/_test/fail?count=1&mode=item"));
    test_host_append_events(h, 10);
    wait_acked(h, 114);
    s = server_call("GET", "/_test/state");
    assert_no_violations(s);
    assert_int_equal(state_int(s, "failed"), 3);
    assert_int_equal(state_int(s, "docs"), 115);
    json_decref(s);

    /* Commands are filtered out (Zeebe's default) yet acknowledged. */
    append_command(h);
    wait_acked(h, 115);
    s = server_call("GET", "/_test/state");
    assert_int_equal(state_int(s, "docs"), 115);
    json_t *seq_before = json_deep_copy(json_object_get(s, "max_sequence"));
    json_decref(s);
    test_host_close(h);
    assert_false(h->ack_off_loop);
    free(h);

    /* A replay of the whole log leaves the same documents. */
    h = host_new();
    add_es(h, -1);
    test_host_append_events(h, 115);
    append_command(h);
    assert_int_equal(exporter_director_start(&h->director), 0);
    wait_acked(h, 115);
    s = server_call("GET", "/_test/state");
    assert_no_violations(s);
    assert_int_equal(state_int(s, "docs"), 115);
    assert_true(json_equal(seq_before, json_object_get(s, "max_sequence")));
    json_decref(s);
    json_decref(seq_before);
    test_host_close(h);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_retry_replay),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
