/* postgresql.c: the built-in "postgresql" exporter: records as rows of a
 * configured schema, written with libpq in batched transactions.
 *
 * Data flow (on the exporter's worker thread, see exporter.h):
 *
 *   export_record(r) --> a row copied into the batch (r's columns, value
 *   as JSON text) --> flush when batch.size rows are buffered, and every
 *   batch.delay from a scheduled task:
 *
 *     BEGIN
 *     INSERT INTO <schema>.records (...) VALUES (...),(...)...
 *         ON CONFLICT DO NOTHING            (chunks of PG_ROWS_PER_INSERT)
 *     INSERT INTO <schema>.exporter_positions ... ON CONFLICT DO UPDATE
 *         SET position = GREATEST(old, new)
 *     COMMIT
 *
 *   --> acknowledge the batch's last position.
 *
 * The schema and its tables are created on first use (CREATE ... IF NOT
 * EXISTS under a transaction-scoped advisory lock, so partitions sharing a
 * database do not race):
 *
 *   records(partition_id, position, key, timestamp, record_type,
 *           value_type, intent, rejection_type, rejection_reason,
 *           source_position, broker_version, value jsonb,
 *           PRIMARY KEY (partition_id, position))
 *     + indexes on key, (value->>'processInstanceKey')::bigint and
 *       (value_type, intent)
 *   exporter_positions(exporter_id, partition_id, position, updated_at)
 *
 * The primary key makes replays idempotent: a record exported twice (at
 * least once delivery) is one row. A failed flush (server down, lost
 * connection) keeps the batch; export_record() fails, the director
 * retries the record (not buffered twice: its position is not above the
 * last buffered one), and the next attempt reconnects.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "exporter/exporter_assert.h"
#include "exporter/exporter.h"

#define PG_SCHEMA_DEFAULT "tandem"
#define PG_URL_DEFAULT "host=localhost dbname=postgres"
#define PG_BATCH_SIZE_DEFAULT 1000
#define PG_BATCH_DELAY_MS_DEFAULT 500
#define PG_COLUMNS 12
#define PG_ROWS_PER_INSERT 200
#define PG_CONNECT_TIMEOUT_S "10"

/* One buffered row: the record's columns as text parameters. */
struct pg_row {
    char *params[PG_COLUMNS];
};

struct pg_exporter {
    char id[64];
    char *conninfo;
    char schema[64]; /* a plain identifier, see pg_configure */
    int64_t batch_size;
    int64_t batch_delay_ms;

    struct exporter_controller *ctl;
    PGconn *conn;
    bool schema_ready;
    struct pg_row *rows; /* batch_size slots */
    size_t row_count;
    int64_t last_added;
    int64_t flush_task;
};

/* ------------------------------------------------------------------------
 * Connection and schema
 * --------------------------------------------------------------------- */

static void pg_disconnect(struct pg_exporter *pg)
{
    if (pg->conn != NULL) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    pg->schema_ready = false;
}

/* Runs one statement without parameters; logs and returns EXPORTER_E_IO
 * on failure (and drops a broken connection). */
static int pg_exec(struct pg_exporter *pg, const char *sql)
{
    PGresult *res = PQexec(pg->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        pg->ctl->log(pg->ctl, EXPORTER_LOG_WARN, "\"%.60s...\" failed: %s", sql,
                     PQerrorMessage(pg->conn));
        rc = EXPORTER_E_IO;
    }
    PQclear(res);
    if (rc != 0 && PQstatus(pg->conn) != CONNECTION_OK) {
        pg_disconnect(pg);
    }
    return rc;
}

/* Server notices ("relation ... already exists, skipping") at debug
 * level instead of libpq's stderr. */
static void pg_notice(void *arg, const char *message)
{
    struct pg_exporter *pg = arg;
    pg->ctl->log(pg->ctl, EXPORTER_LOG_DEBUG, "server notice: %s", message);
}

static int pg_connect(struct pg_exporter *pg)
{
    if (pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_OK) {
        return 0;
    }
    pg_disconnect(pg);
    /* connect_timeout first: the user's conninfo (expanded from dbname)
     * overrides it. */
    const char *keys[] = {"connect_timeout", "dbname", NULL};
    const char *values[] = {PG_CONNECT_TIMEOUT_S, pg->conninfo, NULL};
    pg->conn = PQconnectdbParams(keys, values, 1);
    if (pg->conn == NULL) {
        return EXPORTER_E_NOMEM;
    }
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        pg->ctl->log(pg->ctl, EXPORTER_LOG_WARN, "cannot connect: %s",
                     PQerrorMessage(pg->conn));
        pg_disconnect(pg);
        return EXPORTER_E_IO;
    }
    PQsetNoticeProcessor(pg->conn, pg_notice, pg);
    return 0;
}

static int pg_schema_ensure(struct pg_exporter *pg)
{
    if (pg->schema_ready) {
        return 0;
    }
    const char *s = pg->schema;
    char sql[4096];
    int n = snprintf(
        sql, sizeof(sql),
        "BEGIN;"
        "SELECT pg_advisory_xact_lock(7478233215);"
        "CREATE SCHEMA IF NOT EXISTS %s;"
        "CREATE TABLE IF NOT EXISTS %s.records ("
        " partition_id integer NOT NULL,"
        " position bigint NOT NULL,"
        " key bigint NOT NULL,"
        " \"timestamp\" bigint NOT NULL,"
        " record_type text NOT NULL,"
        " value_type text NOT NULL,"
        " intent text NOT NULL,"
        " rejection_type text NOT NULL,"
        " rejection_reason text NOT NULL,"
        " source_position bigint NOT NULL,"
        " broker_version text NOT NULL,"
        " value jsonb NOT NULL,"
        " PRIMARY KEY (partition_id, position));"
        "CREATE INDEX IF NOT EXISTS records_key_idx ON %s.records (key);"
        "CREATE INDEX IF NOT EXISTS records_process_instance_key_idx"
        " ON %s.records (((value->>'processInstanceKey')::bigint));"
        "CREATE INDEX IF NOT EXISTS records_value_type_intent_idx"
        " ON %s.records (value_type, intent);"
        "CREATE TABLE IF NOT EXISTS %s.exporter_positions ("
        " exporter_id text NOT NULL,"
        " partition_id integer NOT NULL,"
        " position bigint NOT NULL,"
        " updated_at timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (exporter_id, partition_id));"
        "COMMIT;",
        s, s, s, s, s, s);
    EXPORTER_ASSERT(n > 0 && (size_t)n < sizeof(sql));
    int rc = pg_exec(pg, sql);
    if (rc != 0) {
        if (pg->conn != NULL) {
            (void)pg_exec(pg, "ROLLBACK");
        }
        return rc;
    }
    pg->schema_ready = true;
    return 0;
}

/* ------------------------------------------------------------------------
 * Rows and flushing
 * --------------------------------------------------------------------- */

static void pg_row_free(struct pg_row *row)
{
    for (size_t i = 0; i < PG_COLUMNS; i++) {
        free(row->params[i]);
        row->params[i] = NULL;
    }
}

static char *pg_strdup(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n + 1);
    }
    return p;
}

static char *pg_int(int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return pg_strdup(buf);
}

/* The "value" member of the record JSON as text. */
static char *pg_value_json(const struct exporter_record *r)
{
    json_t *root = json_loadb(r->json, r->json_len, 0, NULL);
    json_t *value = json_object_get(root, "value");
    char *text = value != NULL ? json_dumps(value, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

static int pg_row_fill(struct pg_row *row, const struct exporter_record *r)
{
    row->params[0] = pg_int(r->partition_id);
    row->params[1] = pg_int(r->position);
    row->params[2] = pg_int(r->key);
    row->params[3] = pg_int(r->timestamp);
    row->params[4] = pg_strdup(r->record_type_name);
    row->params[5] = pg_strdup(r->value_type_name);
    row->params[6] = pg_strdup(r->intent_name);
    row->params[7] = pg_strdup(r->rejection_type_name);
    row->params[8] = pg_strdup(r->rejection_reason);
    row->params[9] = pg_int(r->source_position);
    row->params[10] = pg_strdup(r->broker_version);
    row->params[11] = pg_value_json(r);
    for (size_t i = 0; i < PG_COLUMNS; i++) {
        if (row->params[i] == NULL) {
            pg_row_free(row);
            return EXPORTER_E_NOMEM;
        }
    }
    return 0;
}

/* INSERT of rows [from, from + n) in one statement. */
static int pg_insert_rows(struct pg_exporter *pg, size_t from, size_t n)
{
    EXPORTER_ASSERT(n > 0 && n <= PG_ROWS_PER_INSERT);
    size_t cap = 512 + n * 80;
    char *sql = malloc(cap);
    const char **params = malloc(n * PG_COLUMNS * sizeof(*params));
    if (sql == NULL || params == NULL) {
        free(sql);
        free(params);
        return EXPORTER_E_NOMEM;
    }
    size_t len = (size_t)snprintf(
        sql, cap,
        "INSERT INTO %s.records (partition_id, position, key, \"timestamp\","
        " record_type, value_type, intent, rejection_type, rejection_reason,"
        " source_position, broker_version, value) VALUES ",
        pg->schema);
    for (size_t i = 0; i < n; i++) {
        size_t b = i * PG_COLUMNS;
        len += (size_t)snprintf(
            sql + len, cap - len,
            "%s($%zu,$%zu,$%zu,$%zu,$%zu,$%zu,$%zu,$%zu,$%zu,$%zu,$%zu,"
            "$%zu::jsonb)",
            i == 0 ? "" : ",", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7,
            b + 8, b + 9, b + 10, b + 11, b + 12);
        EXPORTER_ASSERT(len < cap);
        for (size_t c = 0; c < PG_COLUMNS; c++) {
            params[b + c] = pg->rows[from + i].params[c];
        }
    }
    len += (size_t)snprintf(sql + len, cap - len, " ON CONFLICT DO NOTHING");
    EXPORTER_ASSERT(len < cap);
    PGresult *res = PQexecParams(pg->conn, sql, (int)(n * PG_COLUMNS), NULL,
                                 params, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : EXPORTER_E_IO;
    if (rc != 0) {
        pg->ctl->log(pg->ctl, EXPORTER_LOG_WARN, "insert failed: %s",
                     PQerrorMessage(pg->conn));
    }
    PQclear(res);
    free(sql);
    free(params);
    return rc;
}

static int pg_position_upsert(struct pg_exporter *pg)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.exporter_positions (exporter_id, partition_id,"
             " position) VALUES ($1, $2, $3) ON CONFLICT (exporter_id,"
             " partition_id) DO UPDATE SET position = GREATEST("
             "%s.exporter_positions.position, EXCLUDED.position),"
             " updated_at = now()",
             pg->schema, pg->schema);
    char partition[16];
    char position[32];
    snprintf(partition, sizeof(partition), "%" PRIu32, pg->ctl->partition_id);
    snprintf(position, sizeof(position), "%" PRId64, pg->last_added);
    const char *params[] = {pg->id, partition, position};
    PGresult *res = PQexecParams(pg->conn, sql, 3, NULL, params, NULL, NULL, 0);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : EXPORTER_E_IO;
    if (rc != 0) {
        pg->ctl->log(pg->ctl, EXPORTER_LOG_WARN, "position upsert failed: %s",
                     PQerrorMessage(pg->conn));
    }
    PQclear(res);
    return rc;
}

static int pg_flush(struct pg_exporter *pg)
{
    if (pg->row_count == 0) {
        return 0;
    }
    int rc = pg_connect(pg);
    rc = rc != 0 ? rc : pg_schema_ensure(pg);
    rc = rc != 0 ? rc : pg_exec(pg, "BEGIN");
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; rc == 0 && i < pg->row_count; i += PG_ROWS_PER_INSERT) {
        size_t n = pg->row_count - i;
        rc = pg_insert_rows(pg, i,
                            n < PG_ROWS_PER_INSERT ? n : PG_ROWS_PER_INSERT);
    }
    rc = rc != 0 ? rc : pg_position_upsert(pg);
    rc = rc != 0 ? rc : pg_exec(pg, "COMMIT");
    if (rc != 0) {
        if (pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_OK) {
            (void)pg_exec(pg, "ROLLBACK");
        } else {
            pg_disconnect(pg);
        }
        return rc;
    }
    for (size_t i = 0; i < pg->row_count; i++) {
        pg_row_free(&pg->rows[i]);
    }
    pg->row_count = 0;
    return pg->ctl->acknowledge(pg->ctl, pg->last_added, NULL, 0);
}

static void pg_flush_task(void *arg)
{
    struct pg_exporter *pg = arg;
    pg->flush_task = 0;
    (void)pg_flush(pg); /* a failure is retried by the next export/task */
    int64_t id = pg->ctl->schedule(pg->ctl, (uint64_t)pg->batch_delay_ms,
                                   pg_flush_task, pg);
    pg->flush_task = id > 0 ? id : 0;
}

/* ------------------------------------------------------------------------
 * The exporter table
 * --------------------------------------------------------------------- */

static bool pg_identifier_ok(const char *s)
{
    if (s[0] == '\0' || strlen(s) > 63 ||
        !(islower((unsigned char)s[0]) || s[0] == '_')) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
            *p != '_') {
            return false;
        }
    }
    return true;
}

static int pg_configure(struct exporter_context *ctx, void **instance)
{
    struct pg_exporter *pg = calloc(1, sizeof(*pg));
    if (pg == NULL) {
        return ctx->fail(ctx, NULL, "out of memory");
    }
    snprintf(pg->id, sizeof(pg->id), "%s", ctx->id);
    const char *url = ctx->arg(ctx, "url");
    const char *schema = ctx->arg(ctx, "schema");
    int rc = 0;
    if (schema == NULL) {
        schema = PG_SCHEMA_DEFAULT;
    }
    if (!pg_identifier_ok(schema)) {
        rc = ctx->fail(ctx, "schema",
                       "expected a lower-case SQL identifier ([a-z_][a-z0-9_]*,"
                       " at most 63 characters), got \"%s\"",
                       schema);
    }
    rc = rc != 0 ? rc
                 : ctx->arg_int64(ctx, "batch.size", PG_BATCH_SIZE_DEFAULT, 1,
                                  100000, &pg->batch_size);
    rc = rc != 0 ? rc
                 : ctx->arg_duration_ms(ctx, "batch.delay",
                                        PG_BATCH_DELAY_MS_DEFAULT, 1, 1,
                                        3600000, &pg->batch_delay_ms);
    if (rc == 0) {
        char *err = NULL;
        PQconninfoOption *opts =
            PQconninfoParse(url != NULL ? url : PG_URL_DEFAULT, &err);
        if (opts == NULL) {
            rc = ctx->fail(ctx, "url", "not a libpq connection string: %s",
                           err != NULL ? err : "out of memory");
            PQfreemem(err);
        } else {
            PQconninfoFree(opts);
        }
    }
    if (rc == 0) {
        pg->conninfo = pg_strdup(url != NULL ? url : PG_URL_DEFAULT);
        pg->rows = calloc((size_t)pg->batch_size, sizeof(*pg->rows));
        if (pg->conninfo == NULL || pg->rows == NULL) {
            rc = ctx->fail(ctx, NULL, "out of memory");
        }
    }
    if (rc != 0) {
        free(pg->conninfo);
        free(pg->rows);
        free(pg);
        return rc;
    }
    snprintf(pg->schema, sizeof(pg->schema), "%s", schema);
    pg->last_added = -1;
    *instance = pg;
    return 0;
}

static int pg_open(void *instance, struct exporter_controller *ctl)
{
    struct pg_exporter *pg = instance;
    EXPORTER_ASSERT(pg != NULL && ctl != NULL);
    pg->ctl = ctl;
    int rc = pg_connect(pg);
    rc = rc != 0 ? rc : pg_schema_ensure(pg);
    if (rc != 0) {
        return rc;
    }
    pg->last_added = ctl->last_position(ctl);
    if (pg->flush_task == 0) {
        int64_t id =
            ctl->schedule(ctl, (uint64_t)pg->batch_delay_ms, pg_flush_task, pg);
        pg->flush_task = id > 0 ? id : 0;
    }
    return 0;
}

static int pg_export(void *instance, const struct exporter_record *r)
{
    struct pg_exporter *pg = instance;
    EXPORTER_ASSERT(pg != NULL && r != NULL);
    EXPORTER_ASSERT(pg->row_count <= (size_t)pg->batch_size);
    if (r->position > pg->last_added &&
        pg->row_count < (size_t)pg->batch_size) {
        int rc = pg_row_fill(&pg->rows[pg->row_count], r);
        if (rc != 0) {
            return rc;
        }
        pg->row_count++;
        pg->last_added = r->position;
    }
    if (pg->row_count >= (size_t)pg->batch_size) {
        int rc = pg_flush(pg);
        if (rc != 0) {
            return rc;
        }
        if (r->position > pg->last_added) {
            /* The batch was full when r came: buffer it now. */
            return pg_export(instance, r);
        }
    }
    return 0;
}

static void pg_close(void *instance)
{
    struct pg_exporter *pg = instance;
    if (pg == NULL) {
        return;
    }
    if (pg->ctl != NULL && pg->row_count > 0 && pg_flush(pg) != 0) {
        pg->ctl->log(pg->ctl, EXPORTER_LOG_WARN,
                     "closing with %zu unflushed records (they are exported "
                     "again after the restart)",
                     pg->row_count);
    }
    for (size_t i = 0; i < pg->row_count; i++) {
        pg_row_free(&pg->rows[i]);
    }
    pg_disconnect(pg);
    free(pg->rows);
    free(pg->conninfo);
    free(pg);
}

const struct exporter_def exporter_postgresql_def = {
    .abi_version = EXPORTER_ABI_VERSION,
    .type = "postgresql",
    .configure = pg_configure,
    .open = pg_open,
    .export_record = pg_export,
    .close = pg_close,
};
