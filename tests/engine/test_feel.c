/* test_feel.c: unit tests of the FEEL subset (broker/engine/feel.h).
 *
 * Most tests are tables of (expression, expected JSON result) evaluated
 * against one variables document (VARS below); a result must be
 * json_equal() to the expectation, so an integer where a real is expected
 * (or the reverse) fails too. Error tables give the expression, the
 * negative feel_errno and a fragment the message must contain (the column
 * for syntax errors). Limits are probed at and just past their bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/engine/feel.h"

static const char VARS[] =
    "{\"x\": 5, \"y\": 2.5, \"s\": \"Hello\", \"n\": null, \"t\": true,"
    " \"f\": false, \"list\": [1, 2, 3, 4], \"empty\": [],"
    " \"words\": [\"b\", \"a\", \"c\"],"
    " \"order\": {\"id\": \"o-1\", \"total\": 120.5,"
    "   \"items\": [{\"sku\": \"a\", \"qty\": 2, \"price\": 10},"
    "               {\"sku\": \"b\", \"qty\": 1, \"price\": 100.5}],"
    "   \"customer\": {\"name\": \"Ann\", \"tags\": [\"vip\", \"eu\"]}},"
    " \"nested\": [[1, 2], [3, [4, 5]]],"
    " \"uni\": \"h\\u00e9llo w\\u00f6rld \\ud83d\\ude00\","
    " \"big\": 9223372036854775807, \"small\": -9223372036854775808,"
    " \"order total\": 7}";

struct feel_case {
    const char *expr;
    const char *expect; /* JSON text */
};

struct feel_error_case {
    const char *expr;
    int rc;
    const char *fragment; /* the message contains it */
};

static json_t *vars_load(void)
{
    json_error_t je;
    json_t *v = json_loads(VARS, 0, &je);
    if (v == NULL) {
        fail_msg("VARS is bad JSON: %s at %d", je.text, je.column);
    }
    return v;
}

/* Parses and evaluates text against vars; returns the result or NULL
 * with rc and message filled in. */
static json_t *eval_text(const char *text, const json_t *vars, int *rc,
                         char *err, size_t errlen)
{
    struct feel_expr *e = NULL;
    json_t *out = NULL;

    *rc = feel_parse(text, &e, err, errlen);
    if (*rc != 0) {
        assert_null(e);
        assert_true(*rc < 0);
        assert_true(err[0] != '\0');
        return NULL;
    }
    assert_non_null(e);
    *rc = feel_eval(e, vars, &out, err, errlen);
    if (*rc != 0) {
        assert_null(out);
        assert_true(err[0] != '\0');
    } else {
        assert_non_null(out);
    }
    feel_expr_free(e);
    return out;
}

static void run_cases(const struct feel_case *cases, size_t n)
{
    json_t *vars = vars_load();

    for (size_t i = 0; i < n; i++) {
        char err[256] = "";
        int rc;
        json_error_t je;
        json_t *want = json_loads(cases[i].expect, JSON_DECODE_ANY, &je);
        json_t *got = eval_text(cases[i].expr, vars, &rc, err, sizeof(err));
        if (want == NULL) {
            fail_msg("case %zu: bad expectation %s", i, cases[i].expect);
        }
        if (got == NULL) {
            fail_msg("'%s': rc %d (%s), expected %s", cases[i].expr, rc, err,
                     cases[i].expect);
        }
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT);
            fail_msg("'%s' gave %s (%s), expected %s", cases[i].expr, g,
                     json_is_real(got) ? "real" : "not real", cases[i].expect);
        }
        json_decref(got);
        json_decref(want);
    }
    json_decref(vars);
}

static void run_errors(const struct feel_error_case *cases, size_t n)
{
    json_t *vars = vars_load();

    for (size_t i = 0; i < n; i++) {
        char err[256] = "";
        int rc = 0;
        json_t *got = eval_text(cases[i].expr, vars, &rc, err, sizeof(err));
        if (got != NULL) {
            char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT);
            fail_msg("'%s' gave %s, expected error %d", cases[i].expr, g,
                     cases[i].rc);
        }
        if (rc != cases[i].rc || strstr(err, cases[i].fragment) == NULL) {
            fail_msg("'%s': rc %d message '%s', expected rc %d with '%s'",
                     cases[i].expr, rc, err, cases[i].rc, cases[i].fragment);
        }
    }
    json_decref(vars);
}

#define RUN_CASES(t) run_cases(t, sizeof(t) / sizeof(t[0]))
#define RUN_ERRORS(t) run_errors(t, sizeof(t) / sizeof(t[0]))

/* ------------------------------------------------------------------------
 * Literals and arithmetic
 * --------------------------------------------------------------------- */

static void literals(void **state)
{
    static const struct feel_case cases[] = {
        {"null", "null"},
        {"true", "true"},
        {"false", "false"},
        {"12", "12"},
        {"-3.5", "-3.5"},
        {".5", "0.5"},
        {"1.0", "1"},
        {"=42", "42"},
        {"  7  ", "7"},
        {"9223372036854775807", "9223372036854775807"},
        {"\"a\\\"b\\\\c\\n\\t\\u00e9\\ud83d\\ude00\"",
         "\"a\\\"b\\\\c\\n\\t\\u00e9\\ud83d\\ude00\""},
        {"\"\"", "\"\""},
        {"[]", "[]"},
        {"[1, \"a\", [true], {k: null}]", "[1, \"a\", [true], {\"k\": null}]"},
        {"{}", "{}"},
        {"{a: 1, \"b c\": 2, d: {e: [3]}}",
         "{\"a\": 1, \"b c\": 2, \"d\": {\"e\": [3]}}"},
        {"{a: 1, b: a + 1, c: b * 10}", "{\"a\": 1, \"b\": 2, \"c\": 20}"},
        {"1 /* comment */ + // line comment\n 2", "3"},
    };
    (void)state;
    RUN_CASES(cases);
}

static void arithmetic(void **state)
{
    static const struct feel_case cases[] = {
        {"1 + 2", "3"},
        {"1 + 2 * 3", "7"},
        {"(1 + 2) * 3", "9"},
        {"10 - 2 - 3", "5"},
        {"2 * 3 / 4", "1.5"},
        {"10 / 5", "2"},
        {"10 / 4", "2.5"},
        {"1 / 3", "0.333333333333333"},
        {"-7 / 2", "-3.5"},
        {"2 ** 10", "1024"},
        {"2 ** -1", "0.5"},
        {"2 ** 0.5", "1.4142135623731"},
        {"(-8) ** (1/3)", "null"},
        {"-2 ** 2", "4"},
        {"0.1 + 0.2", "0.3"},
        {"0.1 + 0.2 = 0.3", "true"},
        {"2.5 * 2", "5"},
        {"x * y", "12.5"},
        {"- x", "-5"},
        {"--x", "5"},
        {"big + 1", "9223372036854780000.0"},
        {"big * 2", "18446744073709600000.0"},
        {"-small", "9223372036854780000.0"},
        {"small - 1", "-9223372036854780000.0"},
        {"small / -1", "9223372036854780000.0"},
        {"3 ** 40", "12157665459056900000.0"},
        {"(-1) ** 1001", "-1"},
        {"10 ** 400", "null"},
        {"null + 1", "null"},
        {"1 - null", "null"},
        {"n * 2", "null"},
        {"null / 0", "null"},
        {"1 + \"a\"", "null"},
        {"\"a\" - \"b\"", "null"},
        {"true + 1", "null"},
        {"-\"a\"", "null"},
        {"-null", "null"},
        {"[1] + [2]", "null"},
    };
    (void)state;
    RUN_CASES(cases);
}

static void strings(void **state)
{
    static const struct feel_case cases[] = {
        {"\"a\" + \"b\"", "\"ab\""},
        {"s + \", \" + order.customer.name", "\"Hello, Ann\""},
        {"\"\" + \"\"", "\"\""},
        {"\"a\" + null", "null"},
        {"\"a\" < \"b\"", "true"},
        {"\"ab\" < \"a\"", "false"},
        {"\"a\" <= \"a\"", "true"},
        {"\"b\" > \"abc\"", "true"},
        {"\"\u00e9\" > \"z\"", "true"},
        {"s = \"Hello\"", "true"},
        {"s != \"hello\"", "true"},
    };
    (void)state;
    RUN_CASES(cases);
}

/* ------------------------------------------------------------------------
 * Comparison, null and three-valued logic
 * --------------------------------------------------------------------- */

static void comparison(void **state)
{
    static const struct feel_case cases[] = {
        {"1 = 1", "true"},
        {"1 = 1.0", "true"},
        {"1 != 2", "true"},
        {"1 < 2", "true"},
        {"2 <= 2", "true"},
        {"3 > 2.5", "true"},
        {"2 >= 3", "false"},
        {"big > 9223372036854775806", "true"},
        {"true = true", "true"},
        {"true != false", "true"},
        {"true < false", "null"},
        {"null = null", "true"},
        {"n = null", "true"},
        {"missing = null", "true"},
        {"1 = null", "false"},
        {"null != 1", "true"},
        {"null < 1", "null"},
        {"1 >= null", "null"},
        {"1 = \"1\"", "null"},
        {"1 != \"1\"", "null"},
        {"1 < \"2\"", "null"},
        {"true = 1", "null"},
        {"[1, 2] = [1, 2]", "true"},
        {"[1, 2] = [1, 2.0]", "true"},
        {"[1, 2] = [2, 1]", "false"},
        {"[1, 2] = [1]", "false"},
        {"[1] = [\"1\"]", "null"},
        {"[1] < [2]", "null"},
        {"{a: 1, b: [2]} = {b: [2], a: 1}", "true"},
        {"{a: 1} = {a: 2}", "false"},
        {"{a: 1} = {b: 1}", "false"},
        {"order.items[1] = {sku: \"a\", qty: 2, price: 10}", "true"},
        {"(1 < 2) = true", "true"},
        {"1 < 2 = true", "true"},
    };
    (void)state;
    RUN_CASES(cases);
}

static void logic(void **state)
{
    static const struct feel_case cases[] = {
        /* and: the full three-valued truth table */
        {"true and true", "true"},
        {"true and false", "false"},
        {"true and null", "null"},
        {"false and true", "false"},
        {"false and false", "false"},
        {"false and null", "false"},
        {"null and true", "null"},
        {"null and false", "false"},
        {"null and null", "null"},
        /* or */
        {"true or true", "true"},
        {"true or false", "true"},
        {"true or null", "true"},
        {"false or true", "true"},
        {"false or false", "false"},
        {"false or null", "null"},
        {"null or true", "true"},
        {"null or false", "null"},
        {"null or null", "null"},
        /* non-booleans count as null */
        {"1 and true", "null"},
        {"\"x\" or false", "null"},
        {"0 and false", "false"},
        /* chains and precedence */
        {"t and t and t and f", "false"},
        {"f or f or f or t", "true"},
        {"t or f and f", "true"},
        {"(t or f) and f", "false"},
        {"x > 1 and x < 10", "true"},
        {"x > 1 and missing > 1", "null"},
        {"x < 1 and missing > 1", "false"},
        /* short circuit: the failing operand is not evaluated */
        {"false and 1 / 0 = 1", "false"},
        {"true or 1 / 0 = 1", "true"},
        {"not(true)", "false"},
        {"not(false)", "true"},
        {"not(null)", "null"},
        {"not(1)", "null"},
        {"not(x > 3)", "false"},
    };
    (void)state;
    RUN_CASES(cases);
}

static void conditionals(void **state)
{
    static const struct feel_case cases[] = {
        {"if true then 1 else 2", "1"},
        {"if false then 1 else 2", "2"},
        {"if null then 1 else 2", "2"},
        {"if 1 then 1 else 2", "2"},
        {"if x > 3 then \"big\" else \"small\"", "\"big\""},
        {"if x > 9 then \"big\" else if x > 4 then \"mid\" else \"small\"",
         "\"mid\""},
        {"1 + if t then 1 else 2", "2"},
        {"if t then 1 / 1 else 1 / 0", "1"},
        {"5 between 1 and 10", "true"},
        {"1 between 1 and 10", "true"},
        {"10 between 1 and 10", "true"},
        {"11 between 1 and 10", "false"},
        {"x between y and x + 1", "true"},
        {"\"b\" between \"a\" and \"c\"", "true"},
        {"5 between \"a\" and 10", "null"},
        {"11 between \"a\" and 10", "false"},
        {"null between 1 and 2", "null"},
        {"5 between 1 and 10 and t", "true"},
        {"x in [1, 5]", "true"},
        {"x in [1, 2]", "false"},
        {"x in []", "false"},
        {"x in list", "false"},
        {"3 in list", "true"},
        {"\"vip\" in order.customer.tags", "true"},
        {"x in 5", "true"},
        {"x in (1, 5, 7)", "true"},
        {"x in (1, 2)", "false"},
        {"x in (< 3, > 4)", "true"},
        {"x in < 5", "false"},
        {"x in <= 5", "true"},
        {"x in > 4", "true"},
        {"x in >= 6", "false"},
        {"x in [1..5]", "true"},
        {"x in [1..5)", "false"},
        {"x in [1..5[", "false"},
        {"x in (5..9]", "false"},
        {"x in ]5..9]", "false"},
        {"x in (4..6)", "true"},
        {"x in ]4..6[", "true"},
        {"\"b\" in [\"a\"..\"c\"]", "true"},
        {"x in [\"a\"..\"c\"]", "null"},
        {"null in [1, 2]", "false"},
        {"null in [1, null]", "true"},
        {"[1, 2] in [[1, 2], [3]]", "true"},
        {"[1, 2] in [1, 2]", "true"},
        {"x in [1, 5] and t", "true"},
        {"x in (< 3, \"a\")", "null"},
        {"x in (< \"a\", 1)", "null"},
    };
    (void)state;
    RUN_CASES(cases);
}

/* ------------------------------------------------------------------------
 * Names, paths, filters, nested contexts and lists
 * --------------------------------------------------------------------- */

static void paths(void **state)
{
    static const struct feel_case cases[] = {
        {"x", "5"},
        {"missing", "null"},
        {"order.id", "\"o-1\""},
        {"order.customer.name", "\"Ann\""},
        {"order.customer.tags", "[\"vip\", \"eu\"]"},
        {"order.nope", "null"},
        {"order.nope.deeper", "null"},
        {"x.y", "null"},
        {"s.length", "null"},
        {"n.a", "null"},
        {"order.items.sku", "[\"a\", \"b\"]"},
        {"order.items.nope", "[null, null]"},
        {"[1, {a: 2}].a", "[null, 2]"},
        {"{a: {b: {c: 42}}}.a.b.c", "42"},
        {"`order total` + 1", "8"},
        {"`order`.`id`", "\"o-1\""},
        {"list[1]", "1"},
        {"list[4]", "4"},
        {"list[-1]", "4"},
        {"list[-4]", "1"},
        {"list[0]", "null"},
        {"list[5]", "null"},
        {"list[-5]", "null"},
        {"list[1.9]", "1"},
        {"list[x - 3]", "2"},
        {"empty[1]", "null"},
        {"nested[2][2][1]", "4"},
        {"order.items[2].price", "100.5"},
        {"order.items[-1].sku", "\"b\""},
        {"list[item > 2]", "[3, 4]"},
        {"list[item > 9]", "[]"},
        {"list[odd(item)]", "[1, 3]"},
        {"list[item = 2 or item = 4]", "[2, 4]"},
        {"order.items[qty > 1].sku", "[\"a\"]"},
        {"order.items[item.price > 50].sku", "[\"b\"]"},
        {"order.items[price * qty >= 20][1].sku", "\"a\""},
        {"order.items[sku in [\"a\", \"b\"]].qty", "[2, 1]"},
        {"list[item > x - 3]", "[3, 4]"},
        {"words[item != \"a\"]", "[\"b\", \"c\"]"},
        {"s[1]", "null"},
        {"n[1]", "null"},
        {"[[1, 2], [3]][count(item) > 1]", "[[1, 2]]"},
        {"{a: [1, 2, 3]}.a[item >= 2]", "[2, 3]"},
        {"{list: [1, 2]}.list[2]", "2"},
        {"[{k: 1}, {k: 2}][k = 2][1].k", "2"},
    };
    (void)state;
    RUN_CASES(cases);
}

static void iteration(void **state)
{
    static const struct feel_case cases[] = {
        {"for i in list return i * 2", "[2, 4, 6, 8]"},
        {"for i in 1..3 return i", "[1, 2, 3]"},
        {"for i in 3..1 return i", "[3, 2, 1]"},
        {"for i in 2..2 return i", "[2]"},
        {"for i in [1, 2], j in [10, 20] return i + j", "[11, 21, 12, 22]"},
        {"for i in 1..3, j in i..3 return [i, j]",
         "[[1, 1], [1, 2], [1, 3], [2, 2], [2, 3], [3, 3]]"},
        {"for it in order.items return it.price * it.qty", "[20, 100.5]"},
        {"for i in empty return i", "[]"},
        {"for i in n return i", "null"},
        {"for i in 1..\"a\" return i", "null"},
        {"for i in 1.5..3 return i", "null"},
        {"sum(for i in 1..100 return i)", "5050"},
        {"for x in [1, 2] return x", "[1, 2]"},
        {"some i in list satisfies i > 3", "true"},
        {"some i in list satisfies i > 4", "false"},
        {"some i in empty satisfies i > 4", "false"},
        {"every i in list satisfies i > 0", "true"},
        {"every i in list satisfies i > 1", "false"},
        {"every i in empty satisfies false", "true"},
        {"some i in [1, 2], j in [2, 3] satisfies i = j", "true"},
        {"every it in order.items satisfies it.qty >= 1", "true"},
        {"some i in n satisfies true", "null"},
    };
    (void)state;
    RUN_CASES(cases);
}

/* ------------------------------------------------------------------------
 * Built-in functions
 * --------------------------------------------------------------------- */

static void string_functions(void **state)
{
    static const struct feel_case cases[] = {
        {"string length(s)", "5"},
        {"string length(\"\")", "0"},
        {"string length(uni)", "13"},
        {"string length(1)", "null"},
        {"upper case(s)", "\"HELLO\""},
        {"lower case(s)", "\"hello\""},
        {"upper case(uni)", "\"H\\u00c9LLO W\\u00d6RLD \\ud83d\\ude00\""},
        {"lower case(\"\\u00c9\\u0141\\u0394\\u0416\\u0178\")",
         "\"\\u00e9\\u0142\\u03b4\\u0436\\u00ff\""},
        {"upper case(\"\\u00ff\\u0142\\u03c2\\u0451\")",
         "\"\\u0178\\u0141\\u03a3\\u0401\""},
        {"upper case(null)", "null"},
        {"upper   case(s)", "\"HELLO\""},
        {"substring(s, 2)", "\"ello\""},
        {"substring(s, 2, 3)", "\"ell\""},
        {"substring(s, -3)", "\"llo\""},
        {"substring(s, -3, 2)", "\"ll\""},
        {"substring(s, 1, 0)", "\"\""},
        {"substring(s, 9)", "\"\""},
        {"substring(s, -9)", "\"Hello\""},
        {"substring(s, 2, 99)", "\"ello\""},
        {"substring(uni, 2, 4)", "\"\\u00e9llo\""},
        {"substring(uni, -1)", "\"\\ud83d\\ude00\""},
        {"substring(s, \"a\")", "null"},
        {"substring(1, 1)", "null"},
        {"substring before(\"foobar\", \"bar\")", "\"foo\""},
        {"substring before(\"foobar\", \"xyz\")", "\"\""},
        {"substring after(\"foobar\", \"ob\")", "\"ar\""},
        {"substring after(\"foobar\", \"\")", "\"foobar\""},
        {"contains(s, \"ell\")", "true"},
        {"contains(s, \"xyz\")", "false"},
        {"contains(s, \"\")", "true"},
        {"contains(s, 1)", "null"},
        {"starts with(s, \"He\")", "true"},
        {"starts with(s, \"he\")", "false"},
        {"starts with(\"a\", \"abc\")", "false"},
        {"ends with(s, \"llo\")", "true"},
        {"ends with(s, \"Hello!\")", "false"},
        {"ends with(null, \"a\")", "null"},
        {"trim(\"  a b \\n\")", "\"a b\""},
        {"string join([\"a\", \"b\", \"c\"])", "\"abc\""},
        {"string join([\"a\", null, \"c\"], \", \")", "\"a, c\""},
        {"string join(words, \"-\", \"<\", \">\")", "\"<b-a-c>\""},
        {"string join([], \",\")", "\"\""},
        {"string join([1, 2], \",\")", "null"},
        {"string(1)", "\"1\""},
        {"string(1.5)", "\"1.5\""},
        {"string(-0.000123)", "\"-0.000123\""},
        {"string(1 / 3)", "\"0.333333333333333\""},
        {"string(big * 10)", "\"92233720368547800000\""},
        {"string(s)", "\"Hello\""},
        {"string(null)", "\"null\""},
        {"string(true)", "\"true\""},
        {"string([1, \"a\", null])", "\"[1, \\\"a\\\", null]\""},
        {"string({a: 1, b: [true]})", "\"{a:1, b:[true]}\""},
        {"number(\"12\")", "12"},
        {"number(\"-12.50\")", "-12.5"},
        {"number(\"1e3\")", "1000"},
        {"number(\".5\")", "0.5"},
        {"number(\"99999999999999999999\")", "100000000000000000000.0"},
        {"number(\"12a\")", "null"},
        {"number(\"\")", "null"},
        {"number(\"-\")", "null"},
        {"number(\"1e\")", "null"},
        {"number(\"nan\")", "null"},
        {"number(12)", "null"},
    };
    (void)state;
    RUN_CASES(cases);
}

static void numeric_functions(void **state)
{
    static const struct feel_case cases[] = {
        {"abs(-3)", "3"},
        {"abs(2.5)", "2.5"},
        {"abs(-2.5)", "2.5"},
        {"abs(small)", "9223372036854780000.0"},
        {"abs(\"a\")", "null"},
        {"floor(1.5)", "1"},
        {"floor(-1.5)", "-2"},
        {"floor(3)", "3"},
        {"floor(1.56, 1)", "1.5"},
        {"floor(-1.56, 1)", "-1.6"},
        {"ceiling(1.2)", "2"},
        {"ceiling(-1.2)", "-1"},
        {"ceiling(1.21, 1)", "1.3"},
        {"round(2.5)", "2"},
        {"round(3.5)", "4"},
        {"round(-2.5)", "-2"},
        {"round(2.51)", "3"},
        {"round(1.125, 2)", "1.12"},
        {"round(1.135, 2)", "1.14"},
        {"round(1234, -2)", "1200"},
        {"round(1250, -2)", "1200"},
        {"round(1350, -2)", "1400"},
        {"round(5, 2)", "5"},
        {"decimal(1.115, 2)", "1.12"},
        {"decimal(1/3, 2)", "0.33"},
        {"decimal(0.0001, 2)", "0"},
        {"round up(5.5, 0)", "6"},
        {"round up(-5.5, 0)", "-6"},
        {"round up(1.121, 2)", "1.13"},
        {"round up(0.0001, 2)", "0.01"},
        {"round down(5.5, 0)", "5"},
        {"round down(-5.5, 0)", "-5"},
        {"round half up(5.5, 0)", "6"},
        {"round half up(-5.5, 0)", "-6"},
        {"round half up(1.121, 2)", "1.12"},
        {"round half down(5.5, 0)", "5"},
        {"round half down(-5.5, 0)", "-5"},
        {"round half down(5.51, 0)", "6"},
        {"round(1.5, 0.5)", "null"},
        {"round(\"1\", 0)", "null"},
        {"modulo(12, 5)", "2"},
        {"modulo(-12, 5)", "3"},
        {"modulo(12, -5)", "-3"},
        {"modulo(-12, -5)", "-2"},
        {"modulo(10.1, 4.5)", "1.1"},
        {"modulo(-10.1, 4.5)", "3.4"},
        {"modulo(small, -1)", "0"},
        {"modulo(\"a\", 2)", "null"},
        {"sqrt(16)", "4"},
        {"sqrt(2)", "1.4142135623731"},
        {"sqrt(-1)", "null"},
        {"log(1)", "0"},
        {"log(0)", "null"},
        {"exp(0)", "1"},
        {"odd(5)", "true"},
        {"odd(-3)", "true"},
        {"odd(4)", "false"},
        {"even(4)", "true"},
        {"even(0)", "true"},
        {"even(2.5)", "null"},
        {"odd(null)", "null"},
    };
    (void)state;
    RUN_CASES(cases);
}

static void list_functions(void **state)
{
    static const struct feel_case cases[] = {
        {"count(list)", "4"},
        {"count(empty)", "0"},
        {"count(s)", "null"},
        {"min(list)", "1"},
        {"min(3, 1, 2)", "1"},
        {"min(7)", "7"},
        {"max(list)", "4"},
        {"max(1, 2.5)", "2.5"},
        {"max(words)", "\"c\""},
        {"min(words)", "\"a\""},
        {"min(empty)", "null"},
        {"min([1, \"a\"])", "null"},
        {"max([null, 1])", "null"},
        {"sum(list)", "10"},
        {"sum(1, 2.5)", "3.5"},
        {"sum(empty)", "null"},
        {"sum([1, \"a\"])", "null"},
        {"sum([big, 1])", "9223372036854780000.0"},
        {"product(2, 3, 4)", "24"},
        {"mean(list)", "2.5"},
        {"mean(2, 4)", "3"},
        {"mean(empty)", "null"},
        {"all([true, true])", "true"},
        {"all([true, false, null])", "false"},
        {"all([true, null])", "null"},
        {"all(empty)", "true"},
        {"any([false, true])", "true"},
        {"any([false, null])", "null"},
        {"any(false, false)", "false"},
        {"any(empty)", "false"},
        {"is empty(empty)", "true"},
        {"is empty(list)", "false"},
        {"list contains(list, 3)", "true"},
        {"list contains(list, 3.0)", "true"},
        {"list contains(list, 9)", "false"},
        {"list contains([1, null], null)", "true"},
        {"list contains(order.items, {sku: \"b\", qty: 1, price: 100.5})",
         "true"},
        {"list contains(s, \"H\")", "null"},
        {"append(list, 5)", "[1, 2, 3, 4, 5]"},
        {"append(empty, 1, [2])", "[1, [2]]"},
        {"append(list)", "[1, 2, 3, 4]"},
        {"append(s, 1)", "null"},
        {"concatenate([1], [], [2, 3])", "[1, 2, 3]"},
        {"concatenate(list)", "[1, 2, 3, 4]"},
        {"concatenate([1], 2)", "null"},
        {"distinct values([1, 2, 1, 2.0, \"a\", \"a\", null, null])",
         "[1, 2, \"a\", null]"},
        {"distinct values([[1], [1], {a: 1}, {a: 1}])", "[[1], {\"a\": 1}]"},
        {"index of([1, 2, 1], 1)", "[1, 3]"},
        {"index of(list, 9)", "[]"},
        {"reverse(list)", "[4, 3, 2, 1]"},
        {"reverse(empty)", "[]"},
        {"sublist(list, 2)", "[2, 3, 4]"},
        {"sublist(list, 2, 2)", "[2, 3]"},
        {"sublist(list, -2)", "[3, 4]"},
        {"sublist(list, 9)", "[]"},
        {"flatten(nested)", "[1, 2, 3, 4, 5]"},
        {"flatten([])", "[]"},
        {"flatten(1)", "null"},
        {"get value(order, \"id\")", "\"o-1\""},
        {"get value(order, \"nope\")", "null"},
        {"get value(list, \"a\")", "null"},
        {"is defined(x)", "true"},
        {"is defined(n)", "true"},
        {"is defined(missing)", "false"},
        {"is defined(order.id)", "true"},
        {"is defined(order.nope)", "false"},
        {"is defined(missing.id)", "false"},
        {"is defined(x.y)", "false"},
        {"is defined(order.items.sku)", "true"},
        {"is defined(1)", "true"},
        {"is defined(null)", "true"},
        {"for i in [1] return is defined(i)", "[true]"},
    };
    (void)state;
    RUN_CASES(cases);
}

/* ------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

static void syntax_errors(void **state)
{
    static const struct feel_error_case cases[] = {
        {"", FEEL_E_SYNTAX, "empty expression"},
        {"=", FEEL_E_SYNTAX, "empty expression"},
        {"  // nothing", FEEL_E_SYNTAX, "empty expression"},
        {"1 +", FEEL_E_SYNTAX, "unexpected end of expression at column 4"},
        {"(1 + 2))", FEEL_E_SYNTAX, "unexpected ')' at column 8"},
        {"=(1 + 2))", FEEL_E_SYNTAX, "unexpected ')' at column 9"},
        {"a b", FEEL_E_SYNTAX, "unexpected name 'b' at column 3"},
        {"1 2", FEEL_E_SYNTAX, "unexpected number 2 at column 3"},
        {"(1", FEEL_E_SYNTAX,
         "expected ')' but found end of expression at "
         "column 3"},
        {"[1, 2", FEEL_E_SYNTAX, "expected ',' or ']'"},
        {"{a 1}", FEEL_E_SYNTAX, "expected ':' but found number 1 at column 4"},
        {"{1: 2}", FEEL_E_SYNTAX, "expected a context key"},
        {"{a: 1, a: 2}", FEEL_E_SYNTAX,
         "duplicate context key 'a' at column 8"},
        {"\"abc", FEEL_E_SYNTAX, "unterminated string starting at column 1"},
        {"x + \"\\q\"", FEEL_E_SYNTAX, "unknown escape '\\q' at column 6"},
        {"\"\\u12\"", FEEL_E_SYNTAX, "\\u needs 4 hex digits at column 2"},
        {"\"\\ud800x\"", FEEL_E_SYNTAX, "without a low surrogate at column 2"},
        {"\"\\udc00\"", FEEL_E_SYNTAX, "lone low surrogate"},
        {"\"\\u0000\"", FEEL_E_SYNTAX, "not allowed"},
        {"1 @ 2", FEEL_E_SYNTAX, "unexpected character '@' at column 3"},
        {"\"\xc3\xa9\" + \xff", FEEL_E_SYNTAX,
         "invalid UTF-8 byte 0xff at column 7"},
        {"\"\xc0\xaf\"", FEEL_E_SYNTAX, "invalid UTF-8 byte 0xc0 at column 2"},
        {"\x01", FEEL_E_SYNTAX, "unexpected byte 0x01 at column 1"},
        {"/* open", FEEL_E_SYNTAX, "unterminated comment at column 1"},
        {"`open", FEEL_E_SYNTAX, "unterminated quoted name at column 1"},
        {"``", FEEL_E_SYNTAX, "empty quoted name at column 1"},
        {"x.", FEEL_E_SYNTAX, "expected a member name after '.'"},
        {"x.1", FEEL_E_SYNTAX, "unexpected number .1 at column 2"},
        {"if x then 1", FEEL_E_SYNTAX,
         "expected 'else' but found end of expression at column 12"},
        {"if x 1 else 2", FEEL_E_SYNTAX, "expected 'then'"},
        {"for i in list i", FEEL_E_SYNTAX, "expected 'return'"},
        {"for 1 in list return 1", FEEL_E_SYNTAX, "expected a variable name"},
        {"for i list return 1", FEEL_E_SYNTAX, "expected 'in'"},
        {"some i in list i", FEEL_E_SYNTAX, "expected 'satisfies'"},
        {"x between 1 or 2", FEEL_E_SYNTAX, "expected 'and'"},
        {"x in ]1..2", FEEL_E_SYNTAX, "closing the interval"},
        {"x in ]1, 2]", FEEL_E_SYNTAX, "expected '..' in the interval"},
        {"x in (1, 2", FEEL_E_SYNTAX, "expected ',' or ')'"},
        {"f(1,", FEEL_E_SYNTAX, "unexpected end of expression at column 5"},
        {"f(1 2)", FEEL_E_SYNTAX, "expected ',' or ')' but found number 2"},
        {"1..2", FEEL_E_SYNTAX, "unexpected '..' at column 2"},
        {"true(1)", FEEL_E_SYNTAX, "unexpected '(' at column 5"},
        {"x = = 1", FEEL_E_SYNTAX, "unexpected '=' at column 5"},
        {"123456789012345678901234567890123456789012345678901234567890"
         "123456789012345678901234567890123456789012345678901234567890"
         "123456789012345678901234567890123456789012345678901234567890"
         "123456789012345678901234567890123456789012345678901234567890"
         "123456789012345678901234567890123456789012345678901234567890"
         "123456789012345678901234567890123456789012345678901234567890.5",
         FEEL_E_SYNTAX, "number too large at column 1"},
    };
    (void)state;
    RUN_ERRORS(cases);
}

static void eval_errors(void **state)
{
    static const struct feel_error_case cases[] = {
        {"1 / 0", FEEL_E_EVAL, "division by zero"},
        {"x / (x - 5)", FEEL_E_EVAL, "division by zero"},
        {"1.5 / 0.0", FEEL_E_EVAL, "division by zero"},
        {"mean(empty) + 1 / 0", FEEL_E_EVAL, "division by zero"},
        {"modulo(1, 0)", FEEL_E_EVAL, "modulo by zero"},
        {"foo(1)", FEEL_E_EVAL,
         "no function 'foo' with 1 argument at column 1"},
        {"x + foo bar(1)", FEEL_E_SYNTAX, "unexpected name 'bar'"},
        {"string length(s, 2)", FEEL_E_EVAL,
         "no function 'string length' with 2 arguments"},
        {"substring(s)", FEEL_E_EVAL,
         "no function 'substring' with 1 "
         "argument"},
        {"not()", FEEL_E_EVAL, "no function 'not' with 0 arguments"},
        {"if t then foo() else 1", FEEL_E_EVAL, "no function 'foo'"},
        {"for i in list return 1 / (i - 2)", FEEL_E_EVAL, "division by zero"},
        {"list[1 / 0]", FEEL_E_EVAL, "division by zero"},
        {"list[item / 0 > 1]", FEEL_E_EVAL, "division by zero"},
        {"x in (1 / 0, 2)", FEEL_E_EVAL, "division by zero"},
        {"x in [1 / 0 .. 2]", FEEL_E_EVAL, "division by zero"},
        {"x between 1 / 0 and 2", FEEL_E_EVAL, "division by zero"},
        {"{a: 1, b: 1 / 0}", FEEL_E_EVAL, "division by zero"},
        {"[1, 2 / 0]", FEEL_E_EVAL, "division by zero"},
        {"is defined(1 / 0)", FEEL_E_EVAL, "division by zero"},
        {"some i in list satisfies 1 / 0 = 1", FEEL_E_EVAL, "division by zero"},
    };
    (void)state;
    RUN_ERRORS(cases);
}

/* ------------------------------------------------------------------------
 * Limits
 * --------------------------------------------------------------------- */

/* text = prefix repeated n times + middle + suffix repeated n times. */
static char *text_repeat(const char *prefix, size_t n, const char *middle,
                         const char *suffix)
{
    size_t lp = strlen(prefix), lm = strlen(middle), ls = strlen(suffix);
    char *t = malloc(n * (lp + ls) + lm + 1), *p = t;

    assert_non_null(t);
    for (size_t i = 0; i < n; i++, p += lp) {
        memcpy(p, prefix, lp);
    }
    memcpy(p, middle, lm);
    p += lm;
    for (size_t i = 0; i < n; i++, p += ls) {
        memcpy(p, suffix, ls);
    }
    *p = '\0';
    return t;
}

static int parse_rc(const char *text, char *err, size_t errlen)
{
    struct feel_expr *e = NULL;
    int rc = feel_parse(text, &e, err, errlen);
    if (rc == 0) {
        assert_non_null(e);
    } else {
        assert_null(e);
    }
    feel_expr_free(e);
    return rc;
}

static void limits_depth(void **state)
{
    char err[256];
    char *t;
    (void)state;

    /* parentheses: each is one nesting level of the parser */
    t = text_repeat("(", FEEL_DEPTH_MAX - 1, "1", ")");
    assert_int_equal(parse_rc(t, err, sizeof(err)), 0);
    free(t);
    t = text_repeat("(", FEEL_DEPTH_MAX, "1", ")");
    assert_int_equal(parse_rc(t, err, sizeof(err)), FEEL_E_LIMIT);
    assert_non_null(strstr(err, "nested deeper than 64 levels at column 65"));
    free(t);
    /* 100000 parentheses: refused without exhausting the stack */
    t = text_repeat("(", 30000, "1", ")");
    assert_int_equal(parse_rc(t, err, sizeof(err)), FEEL_E_LIMIT);
    free(t);
    /* nested lists and contexts */
    t = text_repeat("[", 200, "1", "]");
    assert_int_equal(parse_rc(t, err, sizeof(err)), FEEL_E_LIMIT);
    free(t);
    t = text_repeat("{a:", 200, "1", "}");
    assert_int_equal(parse_rc(t, err, sizeof(err)), FEEL_E_LIMIT);
    free(t);
    /* unary minus builds one node each */
    t = text_repeat("-", FEEL_DEPTH_MAX - 1, "1", "");
    assert_int_equal(parse_rc(t, err, sizeof(err)), 0);
    free(t);
    t = text_repeat("-", 5000, "1", "");
    assert_int_equal(parse_rc(t, err, sizeof(err)), FEEL_E_LIMIT);
    assert_non_null(strstr(err, "unary minus"));
    free(t);
    /* long paths nest too */
    t = text_repeat("", 100, "a", ".b");
    assert_int_equal(parse_rc(t, err, sizeof(err)), FEEL_E_LIMIT);
    free(t);
    /* but flat chains stay flat: 10000 terms of each kind */
    t = text_repeat("1 + ", 10000, "1", "");
    {
        json_t *v;
        int rc;
        v = eval_text(t, NULL, &rc, err, sizeof(err));
        assert_int_equal(rc, 0);
        assert_int_equal(json_integer_value(v), 10001);
        json_decref(v);
    }
    free(t);
    t = text_repeat("true and ", 5000, "false", "");
    assert_int_equal(parse_rc(t, err, sizeof(err)), 0);
    free(t);
    t = text_repeat("1 * ", 10000, "1", "");
    assert_int_equal(parse_rc(t, err, sizeof(err)), 0);
    free(t);
    /* for/some/every bind at most 16 variables */
    t = text_repeat("a in [1], ", 15, "b in [1] return 1", "");
    {
        char text[256];
        snprintf(text, sizeof(text), "for %s", t);
        assert_int_equal(parse_rc(text, err, sizeof(err)), 0);
        snprintf(text, sizeof(text), "for c in [2], %s", t);
        assert_int_equal(parse_rc(text, err, sizeof(err)), FEEL_E_LIMIT);
        assert_non_null(strstr(err, "more than 16 variables at column"));
    }
    free(t);
}

static void limits_size(void **state)
{
    char err[256];
    char *t = malloc((size_t)FEEL_TEXT_MAX + 2);
    json_t *vars, *v;
    int rc;
    (void)state;

    assert_non_null(t);
    memset(t, ' ', (size_t)FEEL_TEXT_MAX);
    t[0] = '1';
    t[FEEL_TEXT_MAX] = '\0';
    assert_int_equal(parse_rc(t, err, sizeof(err)), 0);
    t[FEEL_TEXT_MAX] = ' ';
    t[FEEL_TEXT_MAX + 1] = '\0';
    assert_int_equal(parse_rc(t, err, sizeof(err)), FEEL_E_LIMIT);
    assert_non_null(strstr(err, "longer than 65536 bytes"));
    free(t);

    /* the step budget ends runaway iterations */
    v = eval_text("count(for i in 1..100000, j in 1..100000 return 1)", NULL,
                  &rc, err, sizeof(err));
    assert_null(v);
    assert_int_equal(rc, FEEL_E_LIMIT);
    assert_non_null(strstr(err, "steps"));
    v = eval_text("count(for i in 1..1000 return i)", NULL, &rc, err,
                  sizeof(err));
    assert_int_equal(rc, 0);
    assert_int_equal(json_integer_value(v), 1000);
    json_decref(v);

    /* and the string budget runaway concatenation */
    vars = json_object();
    t = malloc((size_t)1 << 20);
    assert_non_null(t);
    memset(t, 'x', (size_t)1 << 20);
    json_object_set_new(vars, "s", json_stringn(t, (size_t)1 << 20));
    free(t);
    v = eval_text("count(for i in 1..100 return s + s)", vars, &rc, err,
                  sizeof(err));
    assert_null(v);
    assert_int_equal(rc, FEEL_E_LIMIT);
    assert_non_null(strstr(err, "bytes of strings"));
    v = eval_text("string length(s + s)", vars, &rc, err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_int_equal(json_integer_value(v), 2 << 20);
    json_decref(v);
    v = eval_text("string length(string join(for i in 1..40 return s))", vars,
                  &rc, err, sizeof(err));
    assert_int_equal(rc, FEEL_E_LIMIT);
    json_decref(vars);
}

/* ------------------------------------------------------------------------
 * API
 * --------------------------------------------------------------------- */

static void api_names(void **state)
{
    struct feel_expr *e;
    const char *names[8];
    char err[128];
    (void)state;

    assert_int_equal(feel_parse("a + b.c + for x in l return x + a + "
                                "string length(z)",
                                &e, err, sizeof(err)),
                     0);
    assert_int_equal(feel_expr_names(e, names, 8), 4);
    assert_string_equal(names[0], "a");
    assert_string_equal(names[1], "b");
    assert_string_equal(names[2], "l");
    assert_string_equal(names[3], "z");
    assert_int_equal(feel_expr_names(e, names, 2), 4);
    assert_int_equal(feel_expr_names(e, NULL, 0), 4);
    feel_expr_free(e);

    assert_int_equal(feel_parse("1 + 2", &e, err, sizeof(err)), 0);
    assert_int_equal(feel_expr_names(e, names, 8), 0);
    feel_expr_free(e);
}

static void api_misuse(void **state)
{
    struct feel_expr *e = NULL;
    json_t *out = NULL, *arr;
    char err[128];
    char tiny[8];
    (void)state;

    assert_int_equal(feel_parse(NULL, &e, err, sizeof(err)), FEEL_E_SYNTAX);
    assert_null(e);
    assert_non_null(strstr(err, "no expression text"));
    assert_int_equal(feel_parse("1", NULL, err, sizeof(err)), FEEL_E_SYNTAX);
    /* no room for a message: still an error code, no overflow */
    assert_int_equal(feel_parse(")", &e, NULL, 0), FEEL_E_SYNTAX);
    assert_int_equal(feel_parse(")", &e, tiny, sizeof(tiny)), FEEL_E_SYNTAX);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    feel_expr_free(NULL);

    assert_int_equal(feel_parse("x", &e, err, sizeof(err)), 0);
    arr = json_array();
    assert_int_equal(feel_eval(e, arr, &out, err, sizeof(err)), FEEL_E_EVAL);
    assert_null(out);
    assert_non_null(strstr(err, "must be a JSON object"));
    json_decref(arr);
    assert_int_equal(feel_eval(NULL, NULL, &out, err, sizeof(err)),
                     FEEL_E_EVAL);
    assert_int_equal(feel_eval(e, NULL, NULL, err, sizeof(err)), FEEL_E_EVAL);
    /* no variables: every name is null */
    assert_int_equal(feel_eval(e, NULL, &out, NULL, 0), 0);
    assert_true(json_is_null(out));
    json_decref(out);
    feel_expr_free(e);
}

/* One parsed expression evaluated many times over different variables
 * gives independent results, and results do not alias its constants. */
static void api_reuse(void **state)
{
    struct feel_expr *e;
    char err[128];
    (void)state;

    assert_int_equal(feel_parse("if x > 2 then \"big\" else [x, \"small\"]", &e,
                                err, sizeof(err)),
                     0);
    for (int i = 0; i < 5; i++) {
        json_t *vars = json_pack("{s:i}", "x", i), *out;
        assert_int_equal(feel_eval(e, vars, &out, err, sizeof(err)), 0);
        if (i > 2) {
            assert_string_equal(json_string_value(out), "big");
        } else {
            assert_int_equal(json_array_size(out), 2);
            assert_int_equal(json_integer_value(json_array_get(out, 0)), i);
            json_array_clear(out);
        }
        json_decref(out);
        json_decref(vars);
    }
    feel_expr_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(literals),
        cmocka_unit_test(arithmetic),
        cmocka_unit_test(strings),
        cmocka_unit_test(comparison),
        cmocka_unit_test(logic),
        cmocka_unit_test(conditionals),
        cmocka_unit_test(paths),
        cmocka_unit_test(iteration),
        cmocka_unit_test(string_functions),
        cmocka_unit_test(numeric_functions),
        cmocka_unit_test(list_functions),
        cmocka_unit_test(syntax_errors),
        cmocka_unit_test(eval_errors),
        cmocka_unit_test(limits_depth),
        cmocka_unit_test(limits_size),
        cmocka_unit_test(api_names),
        cmocka_unit_test(api_misuse),
        cmocka_unit_test(api_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
