/* test_exporter_so.c: a tiny external exporter, built by meson as a
 * loadable module for the registry test (and once more with a wrong ABI
 * version, -DTEST_EXPORTER_ABI=999).
 *
 * It needs the argument "greeting" (a missing one fails configure with
 * the context's error), counts the records it is handed and acknowledges
 * each one. It links nothing from the broker: everything it calls comes
 * through the context and the controller.
 */
#include <stdlib.h>

#include "exporter/exporter.h"

#ifndef TEST_EXPORTER_ABI
#define TEST_EXPORTER_ABI EXPORTER_ABI_VERSION
#endif

struct test_so {
    struct exporter_controller *ctl;
    long exported;
};

static int test_so_configure(struct exporter_context *ctx, void **instance)
{
    const char *greeting = ctx->arg(ctx, "greeting");
    if (greeting == NULL || greeting[0] == '\0') {
        return ctx->fail(ctx, "greeting", "is required");
    }
    struct test_so *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return ctx->fail(ctx, NULL, "out of memory");
    }
    ctx->filter.value_types[1] = false; /* no MESSAGE records */
    *instance = t;
    return 0;
}

static int test_so_open(void *instance, struct exporter_controller *ctl)
{
    struct test_so *t = instance;
    t->ctl = ctl;
    return 0;
}

static int test_so_export(void *instance, const struct exporter_record *r)
{
    struct test_so *t = instance;
    t->exported++;
    return t->ctl->acknowledge(t->ctl, r->position, NULL, 0);
}

static void test_so_close(void *instance)
{
    free(instance);
}

/* Not const-qualified away: dlsym finds the object by this name. */
extern const struct exporter_def tandem_exporter_v1;
const struct exporter_def tandem_exporter_v1 = {
    .abi_version = TEST_EXPORTER_ABI,
    .type = "greeter",
    .configure = test_so_configure,
    .open = test_so_open,
    .export_record = test_so_export,
    .close = test_so_close,
};
