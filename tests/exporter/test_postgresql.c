/* test_postgresql.c: the "postgresql" exporter against two real
 * PostgreSQL servers (the region-0 and region-1 stores), started by
 * pg_server.sh ($PG_SERVER) in temporary directories on loopback ports.
 *
 * One director runs two exporters, pg0 -> server 0 and pg1 -> server 1:
 *   - 400 records: both stores hold exactly the same rows, the schema,
 *     tables and indexes exist, exporter_positions is up to date;
 *   - hard pause: no new rows; resume: the stores catch up;
 *   - a replay of the whole log from -1 changes nothing (idempotent);
 *   - server 1 stopped while 300 more records are exported: pg0 keeps up
 *     (the host never blocks), pg1 backs off; server 1 restarted: pg1
 *     catches up (re-reading from the log, its queue being small), and
 *     both stores are identical again, nothing lost or duplicated.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "exporter/director.h"
#include "test_host.h"

#define STORES 2

static char dirs[STORES][32];
static int ports[STORES];
static bool running[STORES];

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int pg_server(const char *cmd, int i)
{
    const char *script = getenv("PG_SERVER");
    if (script == NULL) {
        fprintf(stderr, "PG_SERVER is not set\n");
        return -1;
    }
    char line[512];
    snprintf(line, sizeof(line), "'%s' %s '%s' %d", script, cmd, dirs[i],
             ports[i]);
    int rc = system(line);
    if (rc != 0) {
        fprintf(stderr, "%s failed (%d); see %s/server.log\n", line, rc,
                dirs[i]);
        return -1;
    }
    running[i] = strcmp(cmd, "start") == 0;
    return 0;
}

static int stores_start(void **state)
{
    (void)state;
    for (int i = 0; i < STORES; i++) {
        snprintf(dirs[i], sizeof(dirs[i]), "/tmp/tandem-pg-XXXXXX");
        if (mkdtemp(dirs[i]) == NULL) {
            return -1;
        }
        ports[i] = free_port();
        if (ports[i] <= 0 || pg_server("start", i) != 0) {
            return -1;
        }
    }
    return 0;
}

static int stores_stop(void **state)
{
    (void)state;
    for (int i = 0; i < STORES; i++) {
        if (running[i]) {
            (void)pg_server("stop", i);
        }
        char line[128];
        snprintf(line, sizeof(line), "rm -rf '%s'", dirs[i]);
        if (dirs[i][0] != '\0' && system(line) != 0) {
            fprintf(stderr, "could not remove %s\n", dirs[i]);
        }
    }
    return 0;
}

static void conninfo(int i, char *out, size_t len)
{
    snprintf(out, len, "host=127.0.0.1 port=%d dbname=postgres user=postgres",
             ports[i]);
}

/* Runs a query returning one value; the result as a new string. */
static char *query1(int i, const char *sql)
{
    char ci[128];
    conninfo(i, ci, sizeof(ci));
    PGconn *c = PQconnectdb(ci);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    }
    const char *v = PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0);
    char *out = malloc(strlen(v) + 1);
    strcpy(out, v);
    PQclear(r);
    PQfinish(c);
    return out;
}

static long count_rows(int i)
{
    char *v = query1(i, "SELECT count(*) FROM region.records");
    long n = atol(v);
    free(v);
    return n;
}

/* Both stores hold exactly the same rows (and n of them). */
static void assert_stores_equal(long n)
{
    static const char *digest =
        "SELECT md5(string_agg(partition_id || ':' || position || ':' || key"
        " || ':' || intent || ':' || value::text, ',' ORDER BY position))"
        " FROM region.records";
    assert_int_equal(count_rows(0), n);
    assert_int_equal(count_rows(1), n);
    char *a = query1(0, digest);
    char *b = query1(1, digest);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void add_pg(struct test_host *h, const char *id, int store,
                   int64_t position)
{
    char ci[128];
    conninfo(store, ci, sizeof(ci));
    const struct exporter_arg args[] = {
        {"url", ci},
        {"schema", "region"},
        {"batch.size", "50"},
        {"batch.delay", "50ms"},
    };
    struct exporter_type t;
    char err[EXPORTER_ERRMSG_MAX];
    assert_int_equal(
        exporter_type_load(&t, id, "postgresql", NULL, err, sizeof(err)), 0);
    struct exporter_director_exporter e = {
        .id = id, .def = t.def, .position = position};
    assert_int_equal(exporter_type_configure(&t, id, 1, args, 4, &e.instance,
                                             &e.filter, err, sizeof(err)),
                     0);
    assert_int_equal(exporter_director_add(&h->director, &e), 0);
}

struct ack_want {
    const char *id;
    int64_t position;
};

static bool cond_acked(struct test_host *h, void *arg)
{
    struct ack_want *w = arg;
    struct test_host_ack *a = test_host_ack(h, w->id);
    return a != NULL && a->position >= w->position;
}

static void wait_acked(struct test_host *h, const char *id, size_t index,
                       uint64_t timeout_ms)
{
    struct ack_want w = {id, h->positions[index]};
    if (!test_host_run_until(h, cond_acked, &w, timeout_ms)) {
        struct test_host_ack *a = test_host_ack(h, id);
        fail_msg("%s: record %zu not acknowledged (last %lld)", id, index,
                 a != NULL ? (long long)a->position : -2LL);
    }
}

static struct test_host *host_new(void)
{
    struct test_host *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    struct exporter_director_options o = {
        .partition_id = 1,
        .queue_records_max = 64,
        .read_records_max = 100,
        .backoff_ms_min = 50,
        .backoff_ms_max = 400,
    };
    test_host_init(h, &o);
    return h;
}

static void host_free(struct test_host *h)
{
    test_host_close(h);
    assert_false(h->ack_off_loop);
    free(h);
}

static void test_two_regions(void **state)
{
    (void)state;
    /* Both stores get the same records. */
    struct test_host *h = host_new();
    add_pg(h, "pg0", 0, -1);
    add_pg(h, "pg1", 1, -1);
    assert_int_equal(exporter_director_start(&h->director), 0);
    test_host_append_events(h, 400);
    wait_acked(h, "pg0", 399, 30000);
    wait_acked(h, "pg1", 399, 30000);
    assert_stores_equal(400);
    char *v = query1(0, "SELECT count(*) FROM pg_indexes WHERE schemaname = "
                        "'region' AND tablename = 'records'");
    assert_string_equal(v, "4"); /* primary key + 3 */
    free(v);
    char want[64];
    snprintf(want, sizeof(want), "%lld", (long long)h->positions[399]);
    v = query1(1, "SELECT position FROM region.exporter_positions WHERE "
                  "exporter_id = 'pg1' AND partition_id = 1");
    assert_string_equal(v, want);
    free(v);
    v = query1(0, "SELECT count(*) FROM region.records WHERE "
                  "(value->>'processInstanceKey')::bigint = "
                  "2251799813685249");
    assert_string_equal(v, "1");
    free(v);
    v = query1(0, "SELECT count(*) FROM region.records WHERE value_type = "
                  "'JOB' AND intent = 'CREATED'");
    assert_string_equal(v, "200");
    free(v);

    /* Hard pause: no new rows; resume: the stores catch up. */
    exporter_director_pause(&h->director, false);
    test_host_append_events(h, 50);
    test_host_run_for(h, 400);
    assert_int_equal(count_rows(0), 400);
    assert_int_equal(count_rows(1), 400);
    exporter_director_resume(&h->director);
    wait_acked(h, "pg0", 449, 30000);
    wait_acked(h, "pg1", 449, 30000);
    assert_stores_equal(450);
    host_free(h);

    /* A replay of the whole log: same rows. */
    h = host_new();
    add_pg(h, "pg0", 0, -1);
    add_pg(h, "pg1", 1, -1);
    test_host_append_events(h, 450);
    assert_int_equal(exporter_director_start(&h->director), 0);
    wait_acked(h, "pg0", 449, 30000);
    wait_acked(h, "pg1", 449, 30000);
    assert_stores_equal(450);

    /* Store 1 down for a while: pg0 and the host carry on. */
    assert_int_equal(pg_server("stop", 1), 0);
    test_host_append_events(h, 300);
    wait_acked(h, "pg0", 749, 30000);
    test_host_run_for(h, 500);
    assert_true(test_host_ack(h, "pg1")->position < h->positions[749]);
    struct exporter_director_info info;
    bool found = false;
    for (size_t i = 0; i < EXPORTER_DIRECTOR_EXPORTERS_MAX; i++) {
        if (exporter_director_info(&h->director, i, &info) &&
            strcmp(info.id, "pg1") == 0) {
            found = true;
            break;
        }
    }
    assert_true(found);
    assert_true(info.failures > 0);
    assert_true(info.queued_records <= 64);
    assert_true(exporter_director_position(&h->director) < h->positions[749]);
    /* Back up: it catches up, nothing lost or duplicated. */
    assert_int_equal(pg_server("start", 1), 0);
    wait_acked(h, "pg1", 749, 60000);
    assert_stores_equal(750);
    assert_int_equal(exporter_director_position(&h->director),
                     h->positions[749]);
    host_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_regions),
    };
    return cmocka_run_group_tests(tests, stores_start, stores_stop);
}
