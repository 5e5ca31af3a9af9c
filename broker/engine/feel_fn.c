/* feel_fn.c: FEEL values and built-in functions.
 *
 * Data flow: the evaluator (feel_eval.c) hands evaluated arguments
 * (borrowed jansson values) to a function of feel_fn_table and gets a new
 * reference back; the parser (feel.c) looks functions up by name and
 * argument count, and matches names with spaces ("string length") against
 * the table. The value helpers below (numbers, equality, ordering,
 * strings, errors) serve both.
 *
 * Numbers: FEEL-Scala computes in decimal; here a number is a JSON integer
 * (int64, exact: + - * stay integral, / is integral when exact, overflow
 * falls back to a real) or a double rounded to 15 significant digits after
 * every operation, so 0.1 + 0.2 = 0.3 as in FEEL. An integral result that
 * fits 2^53 becomes a JSON integer. Non-finite results are null. The
 * conversions assume the C locale's '.' decimal point (no one here calls
 * setlocale).
 *
 * Type mismatches give null, as in FEEL-Scala; the hard errors are
 * division by zero and exhausted budgets. String functions count Unicode
 * code points; upper/lower case map ASCII, Latin-1, Latin Extended-A,
 * Greek and Cyrillic. */
#define _GNU_SOURCE /* memmem */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/engine/feel.h"
#include "broker/engine/feel_internal.h"

/* ------------------------------------------------------------------ */
/* Errors and budgets                                                   */
/* ------------------------------------------------------------------ */

json_t *feel_ctx_fail(struct feel_ctx *c, int rc, const char *fmt, ...)
{
    va_list ap;

    assert(rc < 0);
    if (c->rc != 0) {
        return NULL;
    }
    c->rc = rc;
    if (c->err != NULL && c->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

static json_t *feel_nomem(struct feel_ctx *c)
{
    return feel_ctx_fail(c, FEEL_E_NOMEM, "out of memory evaluating");
}

bool feel_ctx_charge(struct feel_ctx *c, unsigned long n)
{
    if (c->rc != 0) {
        return false;
    }
    if (c->steps < n) {
        c->steps = 0;
        feel_ctx_fail(c, FEEL_E_LIMIT, "evaluation takes more than %lu steps",
                      FEEL_EVAL_STEPS_MAX);
        return false;
    }
    c->steps -= n;
    return true;
}

/* Stores v in *out; NULL means an error (recorded, or out of memory). */
static int feel_fn_done(struct feel_ctx *c, json_t *v, json_t **out)
{
    if (v == NULL) {
        if (c->rc == 0) {
            feel_nomem(c);
        }
        return c->rc;
    }
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Numbers                                                              */
/* ------------------------------------------------------------------ */

#define FEEL_INT_EXACT 9007199254740992.0 /* 2^53 */

struct feel_num {
    bool is_int;
    json_int_t i; /* when is_int */
    double d;     /* always */
};

static bool feel_num_get(const json_t *v, struct feel_num *n)
{
    if (json_is_integer(v)) {
        n->is_int = true;
        n->i = json_integer_value(v);
        n->d = (double)n->i;
        return true;
    }
    if (json_is_real(v)) {
        n->is_int = false;
        n->i = 0;
        n->d = json_real_value(v);
        return true;
    }
    return false;
}

json_t *feel_num_int(struct feel_ctx *c, json_int_t i)
{
    json_t *v = json_integer(i);
    return v != NULL ? v : feel_nomem(c);
}

json_t *feel_num_real(struct feel_ctx *c, double d)
{
    char buf[40];
    json_t *v;

    if (!isfinite(d)) {
        return json_null();
    }
    snprintf(buf, sizeof(buf), "%.15g", d);
    d = strtod(buf, NULL);
    if (d == 0) {
        d = 0; /* no -0 */
    }
    if (floor(d) == d && fabs(d) <= FEEL_INT_EXACT) {
        v = json_integer((json_int_t)d);
    } else {
        v = json_real(d);
    }
    return v != NULL ? v : feel_nomem(c);
}

/* base ** exp for integers, exp >= 0; false on overflow. */
static bool feel_int_pow(json_int_t base, json_int_t exp, json_int_t *out)
{
    json_int_t r = 1;

    assert(exp >= 0);
    if (base == 0 || base == 1) {
        *out = exp == 0 ? 1 : base;
        return true;
    }
    if (base == -1) {
        *out = exp % 2 == 0 ? 1 : -1;
        return true;
    }
    if (exp > 63) {
        return false;
    }
    while (exp > 0) {
        if (__builtin_mul_overflow(r, base, &r)) {
            return false;
        }
        exp--;
    }
    *out = r;
    return true;
}

json_t *feel_num_arith(struct feel_ctx *c, int op, const json_t *a,
                       const json_t *b, unsigned column)
{
    struct feel_num x, y;
    json_int_t r;

    if (op == FEEL_OP_ADD && json_is_string(a) && json_is_string(b)) {
        size_t la = json_string_length(a), lb = json_string_length(b);
        char *buf;
        json_t *v;
        if (la + lb > c->bytes) {
            return feel_ctx_fail(c, FEEL_E_LIMIT,
                                 "evaluation builds more than %zu bytes of "
                                 "strings",
                                 FEEL_EVAL_BYTES_MAX);
        }
        if ((buf = malloc(la + lb + 1)) == NULL) {
            return feel_nomem(c);
        }
        memcpy(buf, json_string_value(a), la);
        memcpy(buf + la, json_string_value(b), lb);
        v = feel_str_new(c, buf, la + lb);
        free(buf);
        return v;
    }
    if (!feel_num_get(a, &x) || !feel_num_get(b, &y)) {
        return json_null();
    }
    switch (op) {
    case FEEL_OP_ADD:
        if (x.is_int && y.is_int && !__builtin_add_overflow(x.i, y.i, &r)) {
            return feel_num_int(c, r);
        }
        return feel_num_real(c, x.d + y.d);
    case FEEL_OP_SUB:
        if (x.is_int && y.is_int && !__builtin_sub_overflow(x.i, y.i, &r)) {
            return feel_num_int(c, r);
        }
        return feel_num_real(c, x.d - y.d);
    case FEEL_OP_MUL:
        if (x.is_int && y.is_int && !__builtin_mul_overflow(x.i, y.i, &r)) {
            return feel_num_int(c, r);
        }
        return feel_num_real(c, x.d * y.d);
    case FEEL_OP_DIV:
        if (y.d == 0) {
            return feel_ctx_fail(c, FEEL_E_EVAL,
                                 "division by zero in the expression at "
                                 "column %u",
                                 column);
        }
        if (x.is_int && y.is_int && !(x.i == INT64_MIN && y.i == -1) &&
            x.i % y.i == 0) {
            return feel_num_int(c, x.i / y.i);
        }
        return feel_num_real(c, x.d / y.d);
    case FEEL_OP_POW:
        if (x.is_int && y.is_int && y.i >= 0 && feel_int_pow(x.i, y.i, &r)) {
            return feel_num_int(c, r);
        }
        return feel_num_real(c, pow(x.d, y.d));
    default:
        assert(0 && "not an arithmetic operator");
        return feel_ctx_fail(c, FEEL_E_EVAL, "bad operator %d", op);
    }
}

json_t *feel_num_negate(struct feel_ctx *c, const json_t *a)
{
    struct feel_num x;

    if (!feel_num_get(a, &x)) {
        return json_null();
    }
    if (x.is_int && x.i != INT64_MIN) {
        return feel_num_int(c, -x.i);
    }
    return feel_num_real(c, -x.d);
}

/* Integral number value (truncated), false for non-numbers. */
static bool feel_num_whole(const json_t *v, double *out)
{
    if (!json_is_number(v)) {
        return false;
    }
    *out = trunc(json_number_value(v));
    return true;
}

/* d as plain decimal text without exponent ("0.000123", "1e+20" ->
 * "100000000000000000000"), 15 significant digits. */
static void feel_num_format(double d, char *buf, size_t n)
{
    char e[40];
    char digits[20];
    size_t nd = 0, k = 0;
    int exp;
    const char *p = e;

    assert(n >= 340);
    if (!isfinite(d)) {
        snprintf(buf, n, "null");
        return;
    }
    snprintf(e, sizeof(e), "%.14e", d);
    if (*p == '-') {
        buf[k++] = '-';
        p++;
    }
    for (; *p != 'e'; p++) {
        if (*p != '.') {
            digits[nd++] = *p;
        }
    }
    exp = atoi(p + 1) + 1; /* digits before the point */
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    if (nd == 1 && digits[0] == '0') {
        snprintf(buf, n, "0");
        return;
    }
    if (exp <= 0) {
        buf[k++] = '0';
        buf[k++] = '.';
        for (int i = 0; i < -exp; i++) {
            buf[k++] = '0';
        }
        memcpy(buf + k, digits, nd);
        k += nd;
    } else if ((size_t)exp >= nd) {
        memcpy(buf + k, digits, nd);
        k += nd;
        for (size_t i = nd; i < (size_t)exp; i++) {
            buf[k++] = '0';
        }
    } else {
        memcpy(buf + k, digits, (size_t)exp);
        k += (size_t)exp;
        buf[k++] = '.';
        memcpy(buf + k, digits + exp, nd - (size_t)exp);
        k += nd - (size_t)exp;
    }
    assert(k < n);
    buf[k] = '\0';
}

enum feel_round {
    FEEL_ROUND_HALF_EVEN,
    FEEL_ROUND_HALF_UP,
    FEEL_ROUND_HALF_DOWN,
    FEEL_ROUND_UP,   /* away from zero */
    FEEL_ROUND_DOWN, /* toward zero */
    FEEL_ROUND_FLOOR,
    FEEL_ROUND_CEILING,
};

/* v rounded to scale digits after the decimal point (negative: before),
 * like Java's BigDecimal.setScale on the decimal digits of v (15
 * significant digits of a real, all of an integer). */
static json_t *feel_num_round(struct feel_ctx *c, const json_t *v,
                              json_int_t scale, enum feel_round mode)
{
    char text[40], digits[24];
    size_t nd = 0;
    long exp; /* value = 0.digits * 10^exp */
    bool neg = false, inc = false, nonzero = false;
    unsigned long long kept = 0;
    long k;
    struct feel_num x;

    if (!feel_num_get(v, &x)) {
        return json_null();
    }
    if (scale > 1000) {
        scale = 1000;
    } else if (scale < -1000) {
        scale = -1000;
    }
    if (x.is_int) {
        snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, x.i);
        neg = x.i < 0;
        for (const char *p = text + neg; *p != '\0'; p++) {
            digits[nd++] = *p;
        }
        exp = (long)nd;
    } else {
        const char *p = text;
        snprintf(text, sizeof(text), "%.14e", x.d);
        if (*p == '-') {
            neg = true;
            p++;
        }
        for (; *p != 'e'; p++) {
            if (*p != '.') {
                digits[nd++] = *p;
            }
        }
        exp = atol(p + 1) + 1;
    }
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    if (nd == 1 && digits[0] == '0') {
        return feel_num_int(c, 0);
    }
    k = exp + (long)scale; /* digits kept */
    if (k >= (long)nd) {
        return json_incref((json_t *)v); /* already that precise */
    }
    if (k < 0) {
        nonzero = true; /* everything dropped, and it is below half */
        inc = mode == FEEL_ROUND_UP || (mode == FEEL_ROUND_CEILING && !neg) ||
              (mode == FEEL_ROUND_FLOOR && neg);
    } else {
        int half; /* dropped part against half a unit: -1, 0, 1 */
        bool rest = false;
        for (long i = 0; i < k; i++) {
            kept = kept * 10 + (unsigned)(digits[i] - '0');
        }
        for (size_t i = (size_t)k + 1; i < nd; i++) {
            rest = rest || digits[i] != '0';
        }
        nonzero = digits[k] != '0' || rest;
        half = digits[k] > '5' || (digits[k] == '5' && rest) ? 1
               : digits[k] == '5'                            ? 0
                                                             : -1;
        switch (mode) {
        case FEEL_ROUND_HALF_EVEN:
            inc = half > 0 || (half == 0 && kept % 2 == 1);
            break;
        case FEEL_ROUND_HALF_UP:
            inc = half >= 0;
            break;
        case FEEL_ROUND_HALF_DOWN:
            inc = half > 0;
            break;
        case FEEL_ROUND_UP:
            inc = nonzero;
            break;
        case FEEL_ROUND_DOWN:
            inc = false;
            break;
        case FEEL_ROUND_FLOOR:
            inc = nonzero && neg;
            break;
        case FEEL_ROUND_CEILING:
            inc = nonzero && !neg;
            break;
        }
    }
    kept += inc;
    if (scale <= 0) {
        json_int_t r = (json_int_t)kept;
        bool ok = true;
        for (json_int_t i = 0; ok && i < -scale && r != 0; i++) {
            ok = !__builtin_mul_overflow(r, 10, &r);
        }
        if (ok) {
            return feel_num_int(c, neg ? -r : r);
        }
    }
    snprintf(text, sizeof(text), "%s%llue%ld", neg ? "-" : "", kept,
             (long)-scale);
    return feel_num_real(c, strtod(text, NULL));
}

/* ------------------------------------------------------------------ */
/* Equality and ordering                                                */
/* ------------------------------------------------------------------ */

static int feel_value_equal_at(const json_t *a, const json_t *b, int depth)
{
    struct feel_num x, y;
    const char *key;
    json_t *av;
    size_t i;
    int res = 1, r;

    if (depth > FEEL_VALUE_DEPTH_MAX) {
        return -1;
    }
    if (json_is_null(a) || json_is_null(b)) {
        return json_is_null(a) && json_is_null(b);
    }
    if (feel_num_get(a, &x) && feel_num_get(b, &y)) {
        if (x.is_int && y.is_int) {
            return x.i == y.i;
        }
        return x.d == y.d;
    }
    if (json_is_string(a) && json_is_string(b)) {
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b),
                      json_string_length(a)) == 0;
    }
    if (json_is_boolean(a) && json_is_boolean(b)) {
        return json_is_true(a) == json_is_true(b);
    }
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b)) {
            return 0;
        }
        json_array_foreach(a, i, av)
        {
            r = feel_value_equal_at(av, json_array_get(b, i), depth + 1);
            if (r == 0) {
                return 0;
            }
            if (r < 0) {
                res = -1;
            }
        }
        return res;
    }
    if (json_is_object(a) && json_is_object(b)) {
        if (json_object_size(a) != json_object_size(b)) {
            return 0;
        }
        json_object_foreach((json_t *)a, key, av)
        {
            json_t *bv = json_object_get(b, key);
            if (bv == NULL) {
                return 0;
            }
            r = feel_value_equal_at(av, bv, depth + 1);
            if (r == 0) {
                return 0;
            }
            if (r < 0) {
                res = -1;
            }
        }
        return res;
    }
    return -1;
}

int feel_value_equal(const json_t *a, const json_t *b)
{
    return feel_value_equal_at(a, b, 0);
}

/* Order of a and b (<0, 0, >0) in *out; false if they do not compare
 * (only numbers with numbers and strings with strings do). */
static bool feel_value_order(const json_t *a, const json_t *b, int *out)
{
    struct feel_num x, y;

    if (feel_num_get(a, &x) && feel_num_get(b, &y)) {
        if (x.is_int && y.is_int) {
            *out = (x.i > y.i) - (x.i < y.i);
        } else {
            *out = (x.d > y.d) - (x.d < y.d);
        }
        return true;
    }
    if (json_is_string(a) && json_is_string(b)) {
        size_t la = json_string_length(a), lb = json_string_length(b);
        int r = memcmp(json_string_value(a), json_string_value(b),
                       la < lb ? la : lb);
        *out = r != 0 ? r : (la > lb) - (la < lb);
        return true;
    }
    return false;
}

int feel_value_compare(int op, const json_t *a, const json_t *b)
{
    int r, ord;

    switch (op) {
    case FEEL_OP_EQ:
        return feel_value_equal(a, b);
    case FEEL_OP_NE:
        r = feel_value_equal(a, b);
        return r < 0 ? -1 : !r;
    default:
        break;
    }
    if (!feel_value_order(a, b, &ord)) {
        return -1;
    }
    switch (op) {
    case FEEL_OP_LT:
        return ord < 0;
    case FEEL_OP_LE:
        return ord <= 0;
    case FEEL_OP_GT:
        return ord > 0;
    case FEEL_OP_GE:
        return ord >= 0;
    default:
        assert(0 && "not a comparison");
        return -1;
    }
}

json_t *feel_value_bool(int tri)
{
    return tri == 1 ? json_true() : tri == 0 ? json_false() : json_null();
}

/* ------------------------------------------------------------------ */
/* Strings                                                              */
/* ------------------------------------------------------------------ */

json_t *feel_str_new(struct feel_ctx *c, const char *p, size_t n)
{
    json_t *v;

    if (n > c->bytes) {
        return feel_ctx_fail(c, FEEL_E_LIMIT,
                             "evaluation builds more than %zu bytes of "
                             "strings",
                             FEEL_EVAL_BYTES_MAX);
    }
    c->bytes -= n;
    v = json_stringn(p, n);
    if (v == NULL) {
        for (size_t i = 0; i < n;) {
            size_t k = feel_utf8_seq((const unsigned char *)p + i, n - i);
            if (k == 0) {
                return feel_ctx_fail(c, FEEL_E_EVAL,
                                     "a string value is not valid UTF-8");
            }
            i += k;
        }
        return feel_nomem(c);
    }
    return v;
}

/* A growing byte buffer whose size is held within the string budget. */
struct feel_sb {
    char *p;
    size_t n;
    size_t cap;
};

static bool feel_sb_add(struct feel_ctx *c, struct feel_sb *b, const char *s,
                        size_t n)
{
    if (c->rc != 0) {
        return false;
    }
    if (n > c->bytes || b->n > c->bytes - n) {
        feel_ctx_fail(c, FEEL_E_LIMIT,
                      "evaluation builds more than %zu bytes of strings",
                      FEEL_EVAL_BYTES_MAX);
        return false;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 64 : b->cap;
        char *np;
        while (cap < b->n + n + 1) {
            cap *= 2;
        }
        if ((np = realloc(b->p, cap)) == NULL) {
            feel_nomem(c);
            return false;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return true;
}

static bool feel_sb_str(struct feel_ctx *c, struct feel_sb *b, const char *s)
{
    return feel_sb_add(c, b, s, strlen(s));
}

static json_t *feel_sb_finish(struct feel_ctx *c, struct feel_sb *b)
{
    json_t *v = c->rc != 0 ? NULL : feel_str_new(c, b->p ? b->p : "", b->n);
    free(b->p);
    b->p = NULL;
    return v;
}

/* Byte length of the code point at s[i] (1 for a broken byte). */
static size_t feel_utf8_step(const char *s, size_t n, size_t i)
{
    size_t k = feel_utf8_seq((const unsigned char *)s + i, n - i);
    assert(i < n);
    return k == 0 ? 1 : k;
}

static size_t feel_utf8_count(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i += feel_utf8_step(s, n, i)) {
        count++;
    }
    return count;
}

/* Byte offset of code point number cp (clamped to n). */
static size_t feel_utf8_offset(const char *s, size_t n, size_t cp)
{
    size_t i = 0;
    while (cp > 0 && i < n) {
        i += feel_utf8_step(s, n, i);
        cp--;
    }
    return i;
}

static unsigned feel_utf8_decode(const char *s, size_t n, size_t i, size_t *len)
{
    const unsigned char *u = (const unsigned char *)s + i;
    size_t k = feel_utf8_seq(u, n - i);
    unsigned cp;

    if (k <= 1) {
        *len = 1;
        return u[0];
    }
    *len = k;
    cp = u[0] & (0xff >> (k + 1));
    for (size_t j = 1; j < k; j++) {
        cp = (cp << 6) | (u[j] & 0x3f);
    }
    return cp;
}

static size_t feel_utf8_encode(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Simple case mapping of one code point; upper when up. */
static unsigned feel_case_map(unsigned cp, bool up)
{
    if (up) {
        if ((cp >= 'a' && cp <= 'z') ||
            (cp >= 0xe0 && cp <= 0xfe && cp != 0xf7)) {
            return cp - 32;
        }
        if (cp == 0xff) {
            return 0x178;
        }
        if ((cp >= 0x100 && cp <= 0x137) || (cp >= 0x14a && cp <= 0x177)) {
            return cp & ~1u;
        }
        if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e)) {
            return cp % 2 == 0 ? cp - 1 : cp;
        }
        if (cp == 0x3c2) {
            return 0x3a3;
        }
        if ((cp >= 0x3b1 && cp <= 0x3c9) || (cp >= 0x430 && cp <= 0x44f)) {
            return cp - 32;
        }
        if (cp >= 0x450 && cp <= 0x45f) {
            return cp - 80;
        }
        return cp;
    }
    if ((cp >= 'A' && cp <= 'Z') || (cp >= 0xc0 && cp <= 0xde && cp != 0xd7)) {
        return cp + 32;
    }
    if (cp == 0x178) {
        return 0xff;
    }
    if ((cp >= 0x100 && cp <= 0x137) || (cp >= 0x14a && cp <= 0x177)) {
        return cp | 1u;
    }
    if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e)) {
        return cp % 2 == 1 ? cp + 1 : cp;
    }
    if ((cp >= 0x391 && cp <= 0x3a9 && cp != 0x3a2) ||
        (cp >= 0x410 && cp <= 0x42f)) {
        return cp + 32;
    }
    if (cp >= 0x400 && cp <= 0x40f) {
        return cp + 80;
    }
    return cp;
}

/* Appends v as text: string() of FEEL; strings nested in lists and
 * contexts are quoted. */
static bool feel_value_text(struct feel_ctx *c, struct feel_sb *b,
                            const json_t *v, bool nested, int depth)
{
    char num[400];
    const char *key;
    json_t *e;
    size_t i;
    bool first = true;

    if (depth > FEEL_VALUE_DEPTH_MAX) {
        feel_ctx_fail(c, FEEL_E_LIMIT, "value nested deeper than %d levels",
                      FEEL_VALUE_DEPTH_MAX);
        return false;
    }
    if (!feel_ctx_charge(c, 1)) {
        return false;
    }
    switch (json_typeof(v)) {
    case JSON_NULL:
        return feel_sb_str(c, b, "null");
    case JSON_TRUE:
        return feel_sb_str(c, b, "true");
    case JSON_FALSE:
        return feel_sb_str(c, b, "false");
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        return feel_sb_str(c, b, num);
    case JSON_REAL:
        feel_num_format(json_real_value(v), num, sizeof(num));
        return feel_sb_str(c, b, num);
    case JSON_STRING:
        return (!nested || feel_sb_str(c, b, "\"")) &&
               feel_sb_add(c, b, json_string_value(v), json_string_length(v)) &&
               (!nested || feel_sb_str(c, b, "\""));
    case JSON_ARRAY:
        if (!feel_sb_str(c, b, "[")) {
            return false;
        }
        json_array_foreach(v, i, e)
        {
            if ((!first && !feel_sb_str(c, b, ", ")) ||
                !feel_value_text(c, b, e, true, depth + 1)) {
                return false;
            }
            first = false;
        }
        return feel_sb_str(c, b, "]");
    case JSON_OBJECT:
        if (!feel_sb_str(c, b, "{")) {
            return false;
        }
        json_object_foreach((json_t *)v, key, e)
        {
            if ((!first && !feel_sb_str(c, b, ", ")) ||
                !feel_sb_str(c, b, key) || !feel_sb_str(c, b, ":") ||
                !feel_value_text(c, b, e, true, depth + 1)) {
                return false;
            }
            first = false;
        }
        return feel_sb_str(c, b, "}");
    }
    return false;
}

/* ------------------------------------------------------------------ */
/* Built-in functions                                                   */
/* ------------------------------------------------------------------ */

#define FEEL_FN(name)                                                          \
    static int name(struct feel_ctx *c, json_t *const *args, size_t n,         \
                    json_t **out)

FEEL_FN(feel_fn_not)
{
    (void)n;
    return feel_fn_done(c,
                        json_is_boolean(args[0])
                            ? feel_value_bool(!json_is_true(args[0]))
                            : json_null(),
                        out);
}

FEEL_FN(feel_fn_string)
{
    struct feel_sb b = {0};
    (void)n;
    if (json_is_string(args[0])) {
        return feel_fn_done(c, json_incref(args[0]), out);
    }
    feel_value_text(c, &b, args[0], false, 0);
    return feel_fn_done(c, feel_sb_finish(c, &b), out);
}

/* number("12.5"): [+-]digits[.digits][(e|E)[+-]digits] or .digits; null
 * for anything else. */
FEEL_FN(feel_fn_number)
{
    const char *s;
    size_t len, i = 0, digits = 0;
    bool plain = true;
    char *copy;
    json_t *v;

    (void)n;
    if (!json_is_string(args[0])) {
        return feel_fn_done(c, json_null(), out);
    }
    s = json_string_value(args[0]);
    len = json_string_length(args[0]);
    if (i < len && (s[i] == '-' || s[i] == '+')) {
        i++;
    }
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        digits++;
    }
    if (i < len && s[i] == '.') {
        plain = false;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            digits++;
        }
    }
    if (digits > 0 && i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t ed = 0;
        plain = false;
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+')) {
            i++;
        }
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            ed++;
        }
        if (ed == 0) {
            digits = 0;
        }
    }
    if (digits == 0 || i != len || len > 4096) {
        return feel_fn_done(c, json_null(), out);
    }
    if ((copy = malloc(len + 1)) == NULL) {
        return feel_fn_done(c, NULL, out);
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    if (plain) {
        char *end;
        long long ll;
        errno = 0;
        ll = strtoll(copy, &end, 10);
        if (errno == 0 && *end == '\0') {
            free(copy);
            return feel_fn_done(c, feel_num_int(c, (json_int_t)ll), out);
        }
    }
    v = feel_num_real(c, strtod(copy, NULL));
    free(copy);
    return feel_fn_done(c, v, out);
}

FEEL_FN(feel_fn_string_length)
{
    (void)n;
    if (!json_is_string(args[0])) {
        return feel_fn_done(c, json_null(), out);
    }
    if (!feel_ctx_charge(c, json_string_length(args[0]) / 64)) {
        return c->rc;
    }
    return feel_fn_done(c,
                        feel_num_int(c, (json_int_t)feel_utf8_count(
                                            json_string_value(args[0]),
                                            json_string_length(args[0]))),
                        out);
}

static int feel_fn_case(struct feel_ctx *c, const json_t *arg, bool up,
                        json_t **out)
{
    const char *s;
    size_t len;
    struct feel_sb b = {0};

    if (!json_is_string(arg)) {
        return feel_fn_done(c, json_null(), out);
    }
    s = json_string_value(arg);
    len = json_string_length(arg);
    for (size_t i = 0; i < len;) {
        char enc[4];
        size_t k;
        unsigned cp = feel_utf8_decode(s, len, i, &k);
        if (k == 1 && cp >= 0x80) {
            feel_sb_add(c, &b, s + i, 1); /* not UTF-8: kept as is */
        } else {
            feel_sb_add(c, &b, enc,
                        feel_utf8_encode(enc, feel_case_map(cp, up)));
        }
        i += k;
    }
    return feel_fn_done(c, feel_sb_finish(c, &b), out);
}

FEEL_FN(feel_fn_upper_case)
{
    (void)n;
    return feel_fn_case(c, args[0], true, out);
}

FEEL_FN(feel_fn_lower_case)
{
    (void)n;
    return feel_fn_case(c, args[0], false, out);
}

/* The [from, to) code point range of a 1-based start (negative: from the
 * end) and optional length over count elements; false when a bound is
 * not a number. Out-of-range bounds are clamped. */
static bool feel_slice(json_t *const *args, size_t n, size_t count,
                       size_t *from, size_t *to)
{
    double start, len, f;

    if (!feel_num_whole(args[1], &start)) {
        return false;
    }
    f = start > 0 ? start - 1 : (double)count + start;
    if (f < 0) {
        f = 0;
    }
    if (f > (double)count) {
        f = (double)count;
    }
    *from = (size_t)f;
    *to = count;
    if (n > 2) {
        if (!feel_num_whole(args[2], &len)) {
            return false;
        }
        if (len < 0) {
            len = 0;
        }
        if (len < (double)(count - *from)) {
            *to = *from + (size_t)len;
        }
    }
    assert(*from <= *to);
    assert(*to <= count);
    return true;
}

/* substring(string, start position, length?) */
FEEL_FN(feel_fn_substring)
{
    const char *s;
    size_t len, from, to, bf, bt;

    if (!json_is_string(args[0])) {
        return feel_fn_done(c, json_null(), out);
    }
    s = json_string_value(args[0]);
    len = json_string_length(args[0]);
    if (!feel_slice(args, n, feel_utf8_count(s, len), &from, &to)) {
        return feel_fn_done(c, json_null(), out);
    }
    bf = feel_utf8_offset(s, len, from);
    bt = bf + feel_utf8_offset(s + bf, len - bf, to - from);
    return feel_fn_done(c, feel_str_new(c, s + bf, bt - bf), out);
}

/* Where needle occurs first in hay, or NULL; both must be strings. */
static const char *feel_str_find(const json_t *hay, const json_t *needle)
{
    if (json_string_length(needle) == 0) {
        return json_string_value(hay);
    }
    return memmem(json_string_value(hay), json_string_length(hay),
                  json_string_value(needle), json_string_length(needle));
}

FEEL_FN(feel_fn_contains)
{
    (void)n;
    if (!json_is_string(args[0]) || !json_is_string(args[1])) {
        return feel_fn_done(c, json_null(), out);
    }
    return feel_fn_done(
        c, feel_value_bool(feel_str_find(args[0], args[1]) != NULL), out);
}

static int feel_fn_affix(struct feel_ctx *c, json_t *const *args, bool start,
                         json_t **out)
{
    size_t ls, lm;

    if (!json_is_string(args[0]) || !json_is_string(args[1])) {
        return feel_fn_done(c, json_null(), out);
    }
    ls = json_string_length(args[0]);
    lm = json_string_length(args[1]);
    return feel_fn_done(
        c,
        feel_value_bool(
            lm <= ls &&
            memcmp(json_string_value(args[0]) + (start ? 0 : ls - lm),
                   json_string_value(args[1]), lm) == 0),
        out);
}

FEEL_FN(feel_fn_starts_with)
{
    (void)n;
    return feel_fn_affix(c, args, true, out);
}

FEEL_FN(feel_fn_ends_with)
{
    (void)n;
    return feel_fn_affix(c, args, false, out);
}

static int feel_fn_around(struct feel_ctx *c, json_t *const *args, bool before,
                          json_t **out)
{
    const char *s, *at;
    size_t len, ml;

    if (!json_is_string(args[0]) || !json_is_string(args[1])) {
        return feel_fn_done(c, json_null(), out);
    }
    s = json_string_value(args[0]);
    len = json_string_length(args[0]);
    ml = json_string_length(args[1]);
    if ((at = feel_str_find(args[0], args[1])) == NULL) {
        return feel_fn_done(c, feel_str_new(c, "", 0), out);
    }
    if (before) {
        return feel_fn_done(c, feel_str_new(c, s, (size_t)(at - s)), out);
    }
    return feel_fn_done(
        c, feel_str_new(c, at + ml, len - (size_t)(at - s) - ml), out);
}

FEEL_FN(feel_fn_substring_before)
{
    (void)n;
    return feel_fn_around(c, args, true, out);
}

FEEL_FN(feel_fn_substring_after)
{
    (void)n;
    return feel_fn_around(c, args, false, out);
}

FEEL_FN(feel_fn_trim)
{
    const char *s;
    size_t a = 0, b;

    (void)n;
    if (!json_is_string(args[0])) {
        return feel_fn_done(c, json_null(), out);
    }
    s = json_string_value(args[0]);
    b = json_string_length(args[0]);
    while (a < b && strchr(" \t\n\r\f\v", s[a]) != NULL && s[a] != '\0') {
        a++;
    }
    while (b > a && strchr(" \t\n\r\f\v", s[b - 1]) != NULL &&
           s[b - 1] != '\0') {
        b--;
    }
    return feel_fn_done(c, feel_str_new(c, s + a, b - a), out);
}

/* string join(list, delimiter?, prefix?, suffix?): null elements are
 * skipped; a non-string element gives null. */
FEEL_FN(feel_fn_string_join)
{
    struct feel_sb b = {0};
    json_t *e;
    size_t i;
    bool first = true;

    if (!json_is_array(args[0])) {
        return feel_fn_done(c, json_null(), out);
    }
    for (size_t k = 1; k < n; k++) {
        if (!json_is_string(args[k]) && !json_is_null(args[k])) {
            return feel_fn_done(c, json_null(), out);
        }
    }
    json_array_foreach(args[0], i, e)
    {
        if (!json_is_string(e) && !json_is_null(e)) {
            return feel_fn_done(c, json_null(), out);
        }
    }
    if (n > 2 && json_is_string(args[2])) {
        feel_sb_add(c, &b, json_string_value(args[2]),
                    json_string_length(args[2]));
    }
    json_array_foreach(args[0], i, e)
    {
        if (json_is_null(e)) {
            continue;
        }
        if (!first && n > 1 && json_is_string(args[1])) {
            feel_sb_add(c, &b, json_string_value(args[1]),
                        json_string_length(args[1]));
        }
        feel_sb_add(c, &b, json_string_value(e), json_string_length(e));
        first = false;
    }
    if (n > 3 && json_is_string(args[3])) {
        feel_sb_add(c, &b, json_string_value(args[3]),
                    json_string_length(args[3]));
    }
    return feel_fn_done(c, feel_sb_finish(c, &b), out);
}

FEEL_FN(feel_fn_abs)
{
    struct feel_num x;
    (void)n;
    if (!feel_num_get(args[0], &x)) {
        return feel_fn_done(c, json_null(), out);
    }
    if (x.is_int && x.i != INT64_MIN) {
        return feel_fn_done(c, feel_num_int(c, x.i < 0 ? -x.i : x.i), out);
    }
    return feel_fn_done(c, feel_num_real(c, fabs(x.d)), out);
}

static int feel_fn_rounding(struct feel_ctx *c, json_t *const *args, size_t n,
                            enum feel_round mode, json_t **out)
{
    double scale = 0;

    if (n > 1 &&
        (!json_is_number(args[1]) || !feel_num_whole(args[1], &scale) ||
         scale != json_number_value(args[1]))) {
        return feel_fn_done(c, json_null(), out);
    }
    return feel_fn_done(c, feel_num_round(c, args[0], (json_int_t)scale, mode),
                        out);
}

FEEL_FN(feel_fn_floor)
{
    return feel_fn_rounding(c, args, n, FEEL_ROUND_FLOOR, out);
}

FEEL_FN(feel_fn_ceiling)
{
    return feel_fn_rounding(c, args, n, FEEL_ROUND_CEILING, out);
}

FEEL_FN(feel_fn_round_half_even)
{
    return feel_fn_rounding(c, args, n, FEEL_ROUND_HALF_EVEN, out);
}

FEEL_FN(feel_fn_round_up)
{
    return feel_fn_rounding(c, args, n, FEEL_ROUND_UP, out);
}

FEEL_FN(feel_fn_round_down)
{
    return feel_fn_rounding(c, args, n, FEEL_ROUND_DOWN, out);
}

FEEL_FN(feel_fn_round_half_up)
{
    return feel_fn_rounding(c, args, n, FEEL_ROUND_HALF_UP, out);
}

FEEL_FN(feel_fn_round_half_down)
{
    return feel_fn_rounding(c, args, n, FEEL_ROUND_HALF_DOWN, out);
}

/* modulo(dividend, divisor): the sign of the divisor, as in FEEL. */
FEEL_FN(feel_fn_modulo)
{
    struct feel_num x, y;
    double r;

    (void)n;
    if (!feel_num_get(args[0], &x) || !feel_num_get(args[1], &y)) {
        return feel_fn_done(c, json_null(), out);
    }
    if (y.d == 0) {
        feel_ctx_fail(c, FEEL_E_EVAL, "modulo by zero");
        return c->rc;
    }
    if (x.is_int && y.is_int) {
        json_int_t m = y.i == -1 ? 0 : x.i % y.i;
        if (m != 0 && (m < 0) != (y.i < 0)) {
            m += y.i;
        }
        return feel_fn_done(c, feel_num_int(c, m), out);
    }
    r = fmod(x.d, y.d);
    if (r != 0 && (r < 0) != (y.d < 0)) {
        r += y.d;
    }
    return feel_fn_done(c, feel_num_real(c, r), out);
}

static int feel_fn_math(struct feel_ctx *c, const json_t *arg,
                        double (*f)(double), double min, json_t **out)
{
    double d;

    if (!json_is_number(arg) || (d = json_number_value(arg)) < min) {
        return feel_fn_done(c, json_null(), out);
    }
    return feel_fn_done(c, feel_num_real(c, f(d)), out);
}

FEEL_FN(feel_fn_sqrt)
{
    (void)n;
    return feel_fn_math(c, args[0], sqrt, 0, out);
}

FEEL_FN(feel_fn_log)
{
    (void)n;
    if (json_is_number(args[0]) && json_number_value(args[0]) <= 0) {
        return feel_fn_done(c, json_null(), out);
    }
    return feel_fn_math(c, args[0], log, 0, out);
}

FEEL_FN(feel_fn_exp)
{
    (void)n;
    return feel_fn_math(c, args[0], exp, -INFINITY, out);
}

static int feel_fn_parity(struct feel_ctx *c, const json_t *arg, int want,
                          json_t **out)
{
    double d;

    if (!json_is_number(arg)) {
        return feel_fn_done(c, json_null(), out);
    }
    d = json_number_value(arg);
    if (d != floor(d)) {
        return feel_fn_done(c, json_null(), out);
    }
    if (json_is_integer(arg)) {
        return feel_fn_done(
            c, feel_value_bool((json_integer_value(arg) & 1) == want), out);
    }
    return feel_fn_done(c, feel_value_bool(fmod(fabs(d), 2) == want), out);
}

FEEL_FN(feel_fn_odd)
{
    (void)n;
    return feel_fn_parity(c, args[0], 1, out);
}

FEEL_FN(feel_fn_even)
{
    (void)n;
    return feel_fn_parity(c, args[0], 0, out);
}

/* The items of a list function: the one list argument, or the arguments
 * themselves (min(1, 2) as min([1, 2])). */
struct feel_items {
    json_t *const *v;
    json_t *list; /* when the items are a list's */
    size_t n;
};

static void feel_items_get(json_t *const *args, size_t n, struct feel_items *it)
{
    if (n == 1 && json_is_array(args[0])) {
        it->list = args[0];
        it->v = NULL;
        it->n = json_array_size(args[0]);
    } else {
        it->list = NULL;
        it->v = args;
        it->n = n;
    }
}

static json_t *feel_items_at(const struct feel_items *it, size_t i)
{
    assert(i < it->n);
    return it->list != NULL ? json_array_get(it->list, i) : it->v[i];
}

/* min/max: all numbers or all strings, else null; empty: null. */
static int feel_fn_extreme(struct feel_ctx *c, json_t *const *args, size_t n,
                           bool max, json_t **out)
{
    struct feel_items it;
    json_t *best = NULL;

    feel_items_get(args, n, &it);
    if (!feel_ctx_charge(c, it.n)) {
        return c->rc;
    }
    for (size_t i = 0; i < it.n; i++) {
        json_t *e = feel_items_at(&it, i);
        int ord;
        if (best == NULL) {
            if (!json_is_number(e) && !json_is_string(e)) {
                return feel_fn_done(c, json_null(), out);
            }
            best = e;
            continue;
        }
        if (feel_value_compare(FEEL_OP_LT, e, best) < 0) {
            return feel_fn_done(c, json_null(), out);
        }
        ord = feel_value_compare(max ? FEEL_OP_GT : FEEL_OP_LT, e, best);
        if (ord == 1) {
            best = e;
        }
    }
    return feel_fn_done(c, best != NULL ? json_incref(best) : json_null(), out);
}

FEEL_FN(feel_fn_min)
{
    return feel_fn_extreme(c, args, n, false, out);
}

FEEL_FN(feel_fn_max)
{
    return feel_fn_extreme(c, args, n, true, out);
}

/* Folds the numbers of the items with op; null for an empty list or a
 * non-number. */
static json_t *feel_items_fold(struct feel_ctx *c, const struct feel_items *it,
                               int op)
{
    json_t *acc = NULL;

    if (!feel_ctx_charge(c, it->n)) {
        return NULL;
    }
    for (size_t i = 0; i < it->n; i++) {
        json_t *e = feel_items_at(it, i), *r;
        if (!json_is_number(e)) {
            json_decref(acc);
            return json_null();
        }
        if (acc == NULL) {
            acc = json_incref(e);
            continue;
        }
        r = feel_num_arith(c, op, acc, e, 0);
        json_decref(acc);
        if ((acc = r) == NULL) {
            return NULL;
        }
    }
    return acc != NULL ? acc : json_null();
}

FEEL_FN(feel_fn_sum)
{
    struct feel_items it;
    feel_items_get(args, n, &it);
    return feel_fn_done(c, feel_items_fold(c, &it, FEEL_OP_ADD), out);
}

FEEL_FN(feel_fn_product)
{
    struct feel_items it;
    feel_items_get(args, n, &it);
    return feel_fn_done(c, feel_items_fold(c, &it, FEEL_OP_MUL), out);
}

FEEL_FN(feel_fn_mean)
{
    struct feel_items it;
    json_t *sum, *count, *r;

    feel_items_get(args, n, &it);
    if ((sum = feel_items_fold(c, &it, FEEL_OP_ADD)) == NULL) {
        return feel_fn_done(c, NULL, out);
    }
    if (json_is_null(sum)) {
        return feel_fn_done(c, sum, out);
    }
    if ((count = feel_num_int(c, (json_int_t)it.n)) == NULL) {
        json_decref(sum);
        return feel_fn_done(c, NULL, out);
    }
    r = feel_num_arith(c, FEEL_OP_DIV, sum, count, 0);
    json_decref(sum);
    json_decref(count);
    return feel_fn_done(c, r, out);
}

/* all: false if any item is false, true if all are true, else null;
 * any: the dual. */
static int feel_fn_quantor(struct feel_ctx *c, json_t *const *args, size_t n,
                           bool all, json_t **out)
{
    struct feel_items it;
    bool unknown = false;

    feel_items_get(args, n, &it);
    if (!feel_ctx_charge(c, it.n)) {
        return c->rc;
    }
    for (size_t i = 0; i < it.n; i++) {
        json_t *e = feel_items_at(&it, i);
        if (json_is_boolean(e) && json_is_true(e) != all) {
            return feel_fn_done(c, feel_value_bool(!all), out);
        }
        if (!json_is_boolean(e)) {
            unknown = true;
        }
    }
    return feel_fn_done(c, unknown ? json_null() : feel_value_bool(all), out);
}

FEEL_FN(feel_fn_all)
{
    return feel_fn_quantor(c, args, n, true, out);
}

FEEL_FN(feel_fn_any)
{
    return feel_fn_quantor(c, args, n, false, out);
}

FEEL_FN(feel_fn_count)
{
    (void)n;
    if (!json_is_array(args[0])) {
        return feel_fn_done(c, json_null(), out);
    }
    return feel_fn_done(
        c, feel_num_int(c, (json_int_t)json_array_size(args[0])), out);
}

FEEL_FN(feel_fn_is_empty)
{
    (void)n;
    if (!json_is_array(args[0])) {
        return feel_fn_done(c, json_null(), out);
    }
    return feel_fn_done(c, feel_value_bool(json_array_size(args[0]) == 0), out);
}

FEEL_FN(feel_fn_list_contains)
{
    json_t *e;
    size_t i;

    (void)n;
    if (!json_is_array(args[0])) {
        return feel_fn_done(c, json_null(), out);
    }
    if (!feel_ctx_charge(c, json_array_size(args[0]))) {
        return c->rc;
    }
    json_array_foreach(args[0], i, e)
    {
        if (feel_value_equal(e, args[1]) == 1) {
            return feel_fn_done(c, json_true(), out);
        }
    }
    return feel_fn_done(c, json_false(), out);
}

/* A new list of the elements of list (may be NULL) then items[0..n). */
static json_t *feel_list_build(struct feel_ctx *c, const json_t *list,
                               json_t *const *items, size_t n)
{
    json_t *r = json_array();

    if (r == NULL) {
        return NULL;
    }
    if (!feel_ctx_charge(c, (list != NULL ? json_array_size(list) : 0) + n) ||
        (list != NULL && json_array_extend(r, (json_t *)list) != 0)) {
        json_decref(r);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (json_array_append(r, items[i]) != 0) {
            json_decref(r);
            return NULL;
        }
    }
    return r;
}

FEEL_FN(feel_fn_append)
{
    if (!json_is_array(args[0])) {
        return feel_fn_done(c, json_null(), out);
    }
    return feel_fn_done(c, feel_list_build(c, args[0], args + 1, n - 1), out);
}

FEEL_FN(feel_fn_concatenate)
{
    json_t *r;

    for (size_t i = 0; i < n; i++) {
        if (!json_is_array(args[i])) {
            return feel_fn_done(c, json_null(), out);
        }
    }
    if ((r = json_array()) == NULL) {
        return feel_fn_done(c, NULL, out);
    }
    for (size_t i = 0; i < n; i++) {
        if (!feel_ctx_charge(c, json_array_size(args[i])) ||
            json_array_extend(r, args[i]) != 0) {
            json_decref(r);
            return feel_fn_done(c, NULL, out);
        }
    }
    return feel_fn_done(c, r, out);
}

FEEL_FN(feel_fn_distinct_values)
{
    json_t *r, *e;
    size_t i;

    (void)n;
    if (!json_is_array(args[0])) {
        return feel_fn_done(c, json_null(), out);
    }
    if ((r = json_array()) == NULL) {
        return feel_fn_done(c, NULL, out);
    }
    json_array_foreach(args[0], i, e)
    {
        json_t *seen;
        size_t k;
        bool dup = false;
        if (!feel_ctx_charge(c, json_array_size(r) + 1)) {
            json_decref(r);
            return c->rc;
        }
        json_array_foreach(r, k, seen)
        {
            if (feel_value_equal(seen, e) == 1) {
                dup = true;
                break;
            }
        }
        if (!dup && json_array_append(r, e) != 0) {
            json_decref(r);
            return feel_fn_done(c, NULL, out);
        }
    }
    return feel_fn_done(c, r, out);
}

/* index of(list, match): the 1-based positions of match. */
FEEL_FN(feel_fn_index_of)
{
    json_t *r, *e;
    size_t i;

    (void)n;
    if (!json_is_array(args[0])) {
        return feel_fn_done(c, json_null(), out);
    }
    if (!feel_ctx_charge(c, json_array_size(args[0])) ||
        (r = json_array()) == NULL) {
        return feel_fn_done(c, NULL, out);
    }
    json_array_foreach(args[0], i, e)
    {
        if (feel_value_equal(e, args[1]) == 1 &&
            json_array_append_new(r, json_integer((json_int_t)i + 1)) != 0) {
            json_decref(r);
            return feel_fn_done(c, NULL, out);
        }
    }
    return feel_fn_done(c, r, out);
}

FEEL_FN(feel_fn_reverse)
{
    json_t *r;
    size_t size;

    (void)n;
    if (!json_is_array(args[0])) {
        return feel_fn_done(c, json_null(), out);
    }
    size = json_array_size(args[0]);
    if (!feel_ctx_charge(c, size) || (r = json_array()) == NULL) {
        return feel_fn_done(c, NULL, out);
    }
    for (size_t i = size; i > 0; i--) {
        if (json_array_append(r, json_array_get(args[0], i - 1)) != 0) {
            json_decref(r);
            return feel_fn_done(c, NULL, out);
        }
    }
    return feel_fn_done(c, r, out);
}

/* sublist(list, start position, length?) */
FEEL_FN(feel_fn_sublist)
{
    json_t *r;
    size_t from, to;

    if (!json_is_array(args[0]) ||
        !feel_slice(args, n, json_array_size(args[0]), &from, &to)) {
        return feel_fn_done(c, json_null(), out);
    }
    if (!feel_ctx_charge(c, to - from) || (r = json_array()) == NULL) {
        return feel_fn_done(c, NULL, out);
    }
    for (size_t i = from; i < to; i++) {
        if (json_array_append(r, json_array_get(args[0], i)) != 0) {
            json_decref(r);
            return feel_fn_done(c, NULL, out);
        }
    }
    return feel_fn_done(c, r, out);
}

static bool feel_flatten_into(struct feel_ctx *c, json_t *r, const json_t *list,
                              int depth)
{
    json_t *e;
    size_t i;

    if (depth > FEEL_VALUE_DEPTH_MAX) {
        feel_ctx_fail(c, FEEL_E_LIMIT, "list nested deeper than %d levels",
                      FEEL_VALUE_DEPTH_MAX);
        return false;
    }
    if (!feel_ctx_charge(c, json_array_size(list))) {
        return false;
    }
    json_array_foreach(list, i, e)
    {
        if (json_is_array(e)) {
            if (!feel_flatten_into(c, r, e, depth + 1)) {
                return false;
            }
        } else if (json_array_append(r, e) != 0) {
            feel_nomem(c);
            return false;
        }
    }
    return true;
}

FEEL_FN(feel_fn_flatten)
{
    json_t *r;

    (void)n;
    if (!json_is_array(args[0])) {
        return feel_fn_done(c, json_null(), out);
    }
    if ((r = json_array()) == NULL) {
        return feel_fn_done(c, NULL, out);
    }
    if (!feel_flatten_into(c, r, args[0], 0)) {
        json_decref(r);
        return feel_fn_done(c, NULL, out);
    }
    return feel_fn_done(c, r, out);
}

/* get value(context, key) */
FEEL_FN(feel_fn_get_value)
{
    json_t *v;

    (void)n;
    if (!json_is_object(args[0]) || !json_is_string(args[1])) {
        return feel_fn_done(c, json_null(), out);
    }
    v = json_object_get(args[0], json_string_value(args[1]));
    return feel_fn_done(c, v != NULL ? json_incref(v) : json_null(), out);
}

/* Handled by the evaluator, which needs the unevaluated argument. */
FEEL_FN(feel_fn_is_defined)
{
    (void)args;
    (void)n;
    (void)out;
    feel_ctx_fail(c, FEEL_E_EVAL, "internal error: is defined called eagerly");
    return c->rc;
}

#define V FEEL_FN_VARARGS
static const struct feel_fn feel_fn_table[] = {
    {"not", 1, 1, FEEL_FN_PLAIN, feel_fn_not},
    {"is defined", 1, 1, FEEL_FN_IS_DEFINED, feel_fn_is_defined},
    {"string", 1, 1, FEEL_FN_PLAIN, feel_fn_string},
    {"number", 1, 1, FEEL_FN_PLAIN, feel_fn_number},
    {"string length", 1, 1, FEEL_FN_PLAIN, feel_fn_string_length},
    {"upper case", 1, 1, FEEL_FN_PLAIN, feel_fn_upper_case},
    {"lower case", 1, 1, FEEL_FN_PLAIN, feel_fn_lower_case},
    {"substring", 2, 3, FEEL_FN_PLAIN, feel_fn_substring},
    {"substring before", 2, 2, FEEL_FN_PLAIN, feel_fn_substring_before},
    {"substring after", 2, 2, FEEL_FN_PLAIN, feel_fn_substring_after},
    {"contains", 2, 2, FEEL_FN_PLAIN, feel_fn_contains},
    {"starts with", 2, 2, FEEL_FN_PLAIN, feel_fn_starts_with},
    {"ends with", 2, 2, FEEL_FN_PLAIN, feel_fn_ends_with},
    {"trim", 1, 1, FEEL_FN_PLAIN, feel_fn_trim},
    {"string join", 1, 4, FEEL_FN_PLAIN, feel_fn_string_join},
    {"abs", 1, 1, FEEL_FN_PLAIN, feel_fn_abs},
    {"floor", 1, 2, FEEL_FN_PLAIN, feel_fn_floor},
    {"ceiling", 1, 2, FEEL_FN_PLAIN, feel_fn_ceiling},
    {"round", 1, 2, FEEL_FN_PLAIN, feel_fn_round_half_even},
    {"decimal", 2, 2, FEEL_FN_PLAIN, feel_fn_round_half_even},
    {"round up", 2, 2, FEEL_FN_PLAIN, feel_fn_round_up},
    {"round down", 2, 2, FEEL_FN_PLAIN, feel_fn_round_down},
    {"round half up", 2, 2, FEEL_FN_PLAIN, feel_fn_round_half_up},
    {"round half down", 2, 2, FEEL_FN_PLAIN, feel_fn_round_half_down},
    {"modulo", 2, 2, FEEL_FN_PLAIN, feel_fn_modulo},
    {"sqrt", 1, 1, FEEL_FN_PLAIN, feel_fn_sqrt},
    {"log", 1, 1, FEEL_FN_PLAIN, feel_fn_log},
    {"exp", 1, 1, FEEL_FN_PLAIN, feel_fn_exp},
    {"odd", 1, 1, FEEL_FN_PLAIN, feel_fn_odd},
    {"even", 1, 1, FEEL_FN_PLAIN, feel_fn_even},
    {"min", 1, V, FEEL_FN_PLAIN, feel_fn_min},
    {"max", 1, V, FEEL_FN_PLAIN, feel_fn_max},
    {"sum", 1, V, FEEL_FN_PLAIN, feel_fn_sum},
    {"product", 1, V, FEEL_FN_PLAIN, feel_fn_product},
    {"mean", 1, V, FEEL_FN_PLAIN, feel_fn_mean},
    {"all", 1, V, FEEL_FN_PLAIN, feel_fn_all},
    {"any", 1, V, FEEL_FN_PLAIN, feel_fn_any},
    {"count", 1, 1, FEEL_FN_PLAIN, feel_fn_count},
    {"is empty", 1, 1, FEEL_FN_PLAIN, feel_fn_is_empty},
    {"list contains", 2, 2, FEEL_FN_PLAIN, feel_fn_list_contains},
    {"append", 1, V, FEEL_FN_PLAIN, feel_fn_append},
    {"concatenate", 1, V, FEEL_FN_PLAIN, feel_fn_concatenate},
    {"distinct values", 1, 1, FEEL_FN_PLAIN, feel_fn_distinct_values},
    {"index of", 2, 2, FEEL_FN_PLAIN, feel_fn_index_of},
    {"reverse", 1, 1, FEEL_FN_PLAIN, feel_fn_reverse},
    {"sublist", 2, 3, FEEL_FN_PLAIN, feel_fn_sublist},
    {"flatten", 1, 1, FEEL_FN_PLAIN, feel_fn_flatten},
    {"get value", 2, 2, FEEL_FN_PLAIN, feel_fn_get_value},
};
#undef V

#define FEEL_FN_COUNT (sizeof(feel_fn_table) / sizeof(feel_fn_table[0]))

const struct feel_fn *feel_fn_find(const char *name, size_t nargs)
{
    assert(name != NULL);
    for (size_t i = 0; i < FEEL_FN_COUNT; i++) {
        const struct feel_fn *f = &feel_fn_table[i];
        if (strcmp(f->name, name) == 0 && nargs >= f->min_args &&
            (f->max_args == FEEL_FN_VARARGS || nargs <= f->max_args)) {
            return f;
        }
    }
    return NULL;
}

const char *feel_fn_name_at(size_t i)
{
    return i < FEEL_FN_COUNT ? feel_fn_table[i].name : NULL;
}
