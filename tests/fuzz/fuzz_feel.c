/* fuzz_feel.c: fuzz target for the FEEL parser and evaluator
 * (broker/engine/feel.c, feel_eval.c, feel_fn.c).
 *
 * The input bytes, cut at the first NUL, are an expression. It is parsed;
 * a rejection must come with a negative code, no expression and a
 * message (naming a column for syntax errors). An accepted expression is
 * evaluated twice against a fixed variables document: both runs must
 * agree (same code, equal results), a failure must explain itself, and the
 * top-level names must be sorted and distinct. Any crash, sanitizer report
 * or failed check aborts. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "broker/engine/feel.h"
#include "fuzz.h"

static const char fuzz_feel_vars_text[] =
    "{\"x\": 5, \"y\": 2.5, \"s\": \"Hello\", \"n\": null, \"t\": true,"
    " \"list\": [1, 2, 3, 4], \"empty\": [], \"words\": [\"b\", \"a\"],"
    " \"order\": {\"id\": \"o-1\", \"total\": 120.5, \"items\":"
    " [{\"sku\": \"a\", \"qty\": 2, \"price\": 10},"
    "  {\"sku\": \"b\", \"qty\": 1, \"price\": 100.5}]},"
    " \"nested\": [[1, [2, [3]]], {\"a\": {\"b\": [4]}}],"
    " \"uni\": \"h\\u00e9llo \\ud83d\\ude00\","
    " \"big\": 9223372036854775807, \"small\": -9223372036854775808}";

static void fuzz_check(int cond)
{
    if (!cond) {
        abort();
    }
}

static json_t *fuzz_feel_vars(void)
{
    static json_t *vars;
    if (vars == NULL) {
        vars = json_loads(fuzz_feel_vars_text, 0, NULL);
        fuzz_check(vars != NULL);
    }
    return vars;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    struct feel_expr *e = (struct feel_expr *)&size; /* must be reset */
    char err[256], err2[256];
    const char *names[16];
    json_t *a = NULL, *b = NULL;
    size_t count;
    int rc, rc2;

    fuzz_check(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    err[0] = 'x';
    rc = feel_parse(text, &e, err, sizeof(err));
    if (rc != 0) {
        fuzz_check(rc == FEEL_E_SYNTAX || rc == FEEL_E_LIMIT ||
                   rc == FEEL_E_NOMEM);
        fuzz_check(e == NULL);
        fuzz_check(err[0] != '\0' && strlen(err) < sizeof(err));
        if (rc == FEEL_E_SYNTAX && strstr(err, "empty expression") == NULL) {
            fuzz_check(strstr(err, "column") != NULL);
        }
        free(text);
        return 0;
    }
    fuzz_check(e != NULL);
    count = feel_expr_names(e, names, 16);
    for (size_t i = 1; i < count && i < 16; i++) {
        fuzz_check(strcmp(names[i - 1], names[i]) < 0);
    }
    rc = feel_eval(e, fuzz_feel_vars(), &a, err, sizeof(err));
    rc2 = feel_eval(e, fuzz_feel_vars(), &b, err2, sizeof(err2));
    fuzz_check(rc == rc2);
    if (rc == 0) {
        fuzz_check(a != NULL && b != NULL);
        fuzz_check(json_equal(a, b));
    } else {
        fuzz_check(rc == FEEL_E_EVAL || rc == FEEL_E_LIMIT ||
                   rc == FEEL_E_NOMEM);
        fuzz_check(a == NULL && b == NULL);
        fuzz_check(err[0] != '\0' && strcmp(err, err2) == 0);
    }
    json_decref(a);
    json_decref(b);
    feel_expr_free(e);
    free(text);
    return 0;
}
