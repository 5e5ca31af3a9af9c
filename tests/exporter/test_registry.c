/* test_registry.c: exporter/registry.c: built-in types by name, external
 * exporters loaded with dlopen (argv[1]: a good module, argv[2]: one with
 * a wrong ABI version), and configure errors naming the exporter id and
 * the key, for the test module and for both built-ins.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exporter/exporter.h"
#include "proto/record.pb-c.h"

static const char *good_so;
static const char *bad_so;

#define ARGS(...) ((const struct exporter_arg[]){__VA_ARGS__})
#define NARGS(...)                                                             \
    (sizeof((const struct exporter_arg[]){__VA_ARGS__}) /                      \
     sizeof(struct exporter_arg))

static void test_builtins(void **state)
{
    (void)state;
    struct exporter_type t;
    char err[EXPORTER_ERRMSG_MAX];
    assert_int_equal(
        exporter_type_load(&t, "es0", "elasticsearch", NULL, err, sizeof(err)),
        0);
    assert_string_equal(t.def->type, "elasticsearch");
    assert_null(t.dl);
    exporter_type_unload(&t);
    assert_int_equal(
        exporter_type_load(&t, "pg", "postgresql", NULL, err, sizeof(err)), 0);
    assert_ptr_equal(t.def, &exporter_postgresql_def);
    exporter_type_unload(&t);
    assert_int_equal(
        exporter_type_load(&t, "x", "kafka", NULL, err, sizeof(err)),
        EXPORTER_E_NOTFOUND);
    assert_non_null(strstr(err, "exporter 'x': unknown type 'kafka'"));
    assert_int_equal(exporter_type_load(&t, "y", NULL, NULL, err, sizeof(err)),
                     EXPORTER_E_INVALID);
    assert_non_null(strstr(err, "exporter 'y'"));
}

static void test_external(void **state)
{
    (void)state;
    struct exporter_type t;
    char err[EXPORTER_ERRMSG_MAX];
    assert_int_equal(
        exporter_type_load(&t, "ext", NULL, good_so, err, sizeof(err)), 0);
    assert_non_null(t.dl);
    assert_string_equal(t.def->type, "greeter");

    /* Missing argument: the module's own error, naming id and key. */
    assert_int_equal(
        exporter_type_validate(&t, "ext", NULL, 0, err, sizeof(err)),
        EXPORTER_E_INVALID);
    assert_string_equal(err, "exporter 'ext': argument 'greeting': is "
                             "required");
    void *instance = NULL;
    struct exporter_filter filter;
    assert_int_equal(
        exporter_type_configure(&t, "ext", 1, ARGS({"GREETING", "hi"}), 1,
                                &instance, &filter, err, sizeof(err)),
        0);
    assert_non_null(instance);
    assert_false(filter.value_types[1]);
    assert_true(filter.value_types[2]);
    t.def->close(instance);
    exporter_type_unload(&t);

    /* The configured type must match the module's. */
    assert_int_equal(exporter_type_load(&t, "ext", "elasticsearch", good_so,
                                        err, sizeof(err)),
                     EXPORTER_E_INVALID);
    assert_non_null(strstr(err, "is of type 'greeter'"));
    /* Wrong ABI version. */
    assert_int_equal(
        exporter_type_load(&t, "old", NULL, bad_so, err, sizeof(err)),
        EXPORTER_E_ABI);
    assert_non_null(strstr(err, "ABI version 999"));
    /* Missing file. */
    assert_int_equal(exporter_type_load(&t, "gone", NULL,
                                        "/nonexistent/exporter.so", err,
                                        sizeof(err)),
                     EXPORTER_E_LOAD);
    assert_non_null(strstr(err, "exporter 'gone': cannot load"));
}

static void expect_error(const char *type, const struct exporter_arg *args,
                         size_t n, const char *want)
{
    struct exporter_type t;
    char err[EXPORTER_ERRMSG_MAX];
    assert_int_equal(exporter_type_load(&t, "e1", type, NULL, err, sizeof(err)),
                     0);
    int rc = exporter_type_validate(&t, "e1", args, n, err, sizeof(err));
    if (rc != EXPORTER_E_INVALID || strstr(err, want) == NULL) {
        fail_msg("want \"%s\", got %d \"%s\"", want, rc, err);
    }
}

static void test_elasticsearch_args(void **state)
{
    (void)state;
    expect_error("elasticsearch", ARGS({"bulk.size", "abc"}), 1,
                 "exporter 'e1': argument 'bulk.size': expected an integer, "
                 "got \"abc\"");
    expect_error("elasticsearch", ARGS({"bulk.size", "0"}), 1,
                 "argument 'bulk.size': 0 is outside [1, 1000000]");
    expect_error("elasticsearch", ARGS({"index.prefix", "zeebe_record"}), 1,
                 "argument 'index.prefix': must be non-empty and must not "
                 "contain '_'");
    expect_error("elasticsearch", ARGS({"url", "localhost:9200"}), 1,
                 "argument 'url': expected an http:// or https:// URL");
    expect_error("elasticsearch", ARGS({"bulk.delay", "5 seconds"}), 1,
                 "argument 'bulk.delay': expected a duration");
    expect_error("elasticsearch", ARGS({"index.jobBatch", "yes"}), 1,
                 "argument 'index.jobBatch': expected true or false");

    /* Zeebe's defaults, and relaxed keys (the environment's lower case). */
    struct exporter_type t;
    char err[EXPORTER_ERRMSG_MAX];
    assert_int_equal(
        exporter_type_load(&t, "es", "elasticsearch", NULL, err, sizeof(err)),
        0);
    void *instance = NULL;
    struct exporter_filter f;
    assert_int_equal(
        exporter_type_configure(&t, "es", 1,
                                ARGS({"bulk.memorylimit", "1024"},
                                     {"index.processinstance", "false"},
                                     {"INDEX.COMMAND", "true"}),
                                3, &instance, &f, err, sizeof(err)),
        0);
    assert_true(f.record_types[TANDEM__RECORD__RECORD_TYPE__COMMAND]);
    assert_true(f.record_types[TANDEM__RECORD__RECORD_TYPE__EVENT]);
    assert_false(
        f.record_types[TANDEM__RECORD__RECORD_TYPE__COMMAND_REJECTION]);
    assert_false(f.value_types[TANDEM__RECORD__VALUE_TYPE__PROCESS_INSTANCE]);
    assert_false(f.value_types[TANDEM__RECORD__VALUE_TYPE__JOB_BATCH]);
    assert_true(f.value_types[TANDEM__RECORD__VALUE_TYPE__JOB]);
    assert_true(f.value_types[TANDEM__RECORD__VALUE_TYPE__DEPLOYMENT]);
    t.def->close(instance);
}

static void test_postgresql_args(void **state)
{
    (void)state;
    expect_error("postgresql", ARGS({"schema", "Bad-Name"}), 1,
                 "exporter 'e1': argument 'schema': expected a lower-case "
                 "SQL identifier");
    expect_error("postgresql", ARGS({"batch.size", "-3"}), 1,
                 "argument 'batch.size': -3 is outside");
    expect_error("postgresql", ARGS({"batch.delay", "1h"}), 1,
                 "argument 'batch.delay': expected a duration");
    expect_error("postgresql", ARGS({"url", "host='unterminated"}), 1,
                 "argument 'url': not a libpq connection string");
    struct exporter_type t;
    char err[EXPORTER_ERRMSG_MAX];
    assert_int_equal(
        exporter_type_load(&t, "pg", "postgresql", NULL, err, sizeof(err)), 0);
    assert_int_equal(
        exporter_type_validate(&t, "pg",
                               ARGS({"url", "postgresql://u@127.0.0.1:1/db"},
                                    {"batch.delay", "250ms"}),
                               2, err, sizeof(err)),
        0);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(exporter_strerror(EXPORTER_E_ABI),
                        "ABI version mismatch");
    assert_string_equal(exporter_strerror(0), "success");
    assert_string_equal(exporter_strerror(-1000), "unknown error");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s GOOD.so BADABI.so\n", argv[0]);
        return 2;
    }
    good_so = argv[1];
    bad_so = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtins),
        cmocka_unit_test(test_external),
        cmocka_unit_test(test_elasticsearch_args),
        cmocka_unit_test(test_postgresql_args),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
