/* feel.h: a subset of FEEL (Friendly Enough Expression Language), the
 * expression language of BPMN conditions, job types/retries and
 * input/output mappings in Zeebe.
 *
 * Data flow:
 *
 *   expression text (the part after a leading '=') --feel_parse()-->
 *     struct feel_expr (an AST, immutable, shareable)
 *   feel_eval(expr, variables JSON object) --> JSON value (jansson json_t)
 *     or an error message naming the problem (never a crash)
 *
 * Values are jansson JSON values: null, true/false, numbers (json integer
 * when integral and in range, else real), strings, arrays (FEEL lists) and
 * objects (FEEL contexts).
 *
 * Supported (see docs/engine.md for the table; semantics of FEEL-Scala,
 * the FEEL engine of Zeebe):
 *   literals      null, true, false, numbers (12, -3.5, .5), "strings"
 *                 with \" \\ \/ \' \b \f \n \r \t \uXXXX escapes (not
 *                 \u0000), lists [1, 2], contexts {a: 1, "b c": 2, d: a + 1}
 *                 (later entries see earlier ones); line (//) and block
 *                 comments
 *   names         variables a, `quoted name`, paths a.b.c (a missing name
 *                 or member, or a path into a non-context, is null; a path
 *                 into a list maps over it: [{a:1},{a:2}].a = [1, 2]),
 *                 list index x[1] (1-based, -1 = last, out of range null),
 *                 list filter x[item > 1] / x[price > 10] (item and the
 *                 element's members in scope)
 *   arithmetic    + - * / ** and unary minus on numbers; + on strings
 *                 concatenates; null or mismatched types give null
 *   comparison    = != on any values (deep on lists and contexts; values of
 *                 different types compare to null, except that x = null
 *                 is true/false); < <= > >= on numbers and strings (else
 *                 null); x between a and b; x in [1, 2] (element of),
 *                 x in 5, x in [1..5] / (1..5) / ]1..5[ (intervals),
 *                 x in < 5, x in (< 3, > 4, 7) (any test passes)
 *   logic         and, or (three-valued: false and null = false, true or
 *                 null = true, non-booleans count as null), not(x)
 *   conditional   if c then a else b (c not true: else)
 *   iteration     for i in list, j in 1..3 return e; some/every x in list
 *                 satisfies c
 *   functions     string length, upper case, lower case, substring
 *                 (1-based start, negative from the end, optional length),
 *                 substring before, substring after, contains, starts with,
 *                 ends with, trim, string join, string, number, abs,
 *                 floor, ceiling (optional scale), round (optional scale,
 *                 round half even like FEEL decimal(n, scale)), decimal,
 *                 round up, round down, round half up, round half down,
 *                 modulo (sign of the divisor), sqrt, log, exp, odd, even,
 *                 min, max, sum, product, mean (a list or the arguments),
 *                 all, any, count, is empty, list contains, append,
 *                 concatenate, distinct values, index of, reverse, sublist,
 *                 flatten, get value, is defined (false for a missing
 *                 variable or member, true for null), not
 *   Not supported: dates, times and durations, regular expressions,
 *   named arguments, user-defined functions, `instance of`.
 *
 * Numbers: JSON integers (int64) stay integral under + - * and under /
 * when exact (10 / 5 = 2, 10 / 4 = 2.5), overflowing to a real; reals are
 * doubles rounded to 15 significant digits after each operation (so
 * 0.1 + 0.2 = 0.3 as in FEEL's decimals), and a real result that is
 * integral and within 2^53 becomes a JSON integer. Non-finite results are
 * null. Dump results with JSON_REAL_PRECISION(15) to print 0.3, not
 * 0.29999999999999999.
 *
 * Errors: feel_parse() rejects malformed text with a message giving the
 * offending column (1-based, in code points of the text as passed, a
 * leading '=' included); feel_eval() fails (returns FEEL_E_EVAL) only for
 * hard errors (unknown function or wrong argument count, division or
 * modulo by zero); type mismatches give null, as in FEEL-Scala. Depth and
 * size are bounded (FEEL_DEPTH_MAX, FEEL_TEXT_MAX, and an evaluation
 * budget of steps and string bytes reported as FEEL_E_LIMIT) so hostile
 * input cannot exhaust the stack, the memory or the time.
 *
 * Thread safety: a parsed expression is immutable; any number of threads
 * may evaluate it at once (jansson's reference counts are atomic). No
 * globals, no I/O, no clock.
 */
#ifndef TANDEM_ENGINE_FEEL_H
#define TANDEM_ENGINE_FEEL_H

#include <stddef.h>

#include <jansson.h>

#define FEEL_DEPTH_MAX 64      /* nesting of the AST */
#define FEEL_TEXT_MAX 65536    /* bytes of expression text */

enum feel_errno {
    FEEL_E_SYNTAX = -1, /* feel_parse: malformed expression */
    FEEL_E_EVAL = -2,   /* feel_eval: the expression failed at run time */
    FEEL_E_NOMEM = -3,
    FEEL_E_LIMIT = -4,  /* too long or too deeply nested */
};

struct feel_expr;

/* Parses text (NUL-terminated; without the leading '=' of BPMN
 * attributes, though a leading '=' is tolerated and skipped). On success
 * *out is the expression (free with feel_expr_free()) and 0 is returned;
 * otherwise a negative feel_errno and err holds a message such as
 * "unexpected ')' at column 7". */
int feel_parse(const char *text, struct feel_expr **out, char *err,
               size_t errlen);

void feel_expr_free(struct feel_expr *expr);

/* Evaluates expr with vars (a JSON object of the visible variables, or
 * NULL for none; borrowed). On success *out is a new reference to the
 * result (never NULL: FEEL null is json_null()) and 0 is returned;
 * otherwise a negative feel_errno with a message in err, e.g.
 * "no function 'foo' with 2 arguments at column 1". The result may share
 * parts with vars (a variable's value is returned by reference): treat it
 * as read-only or json_deep_copy() it before changing it. Pure: no
 * globals, no I/O. */
int feel_eval(const struct feel_expr *expr, const json_t *vars,
              json_t **out, char *err, size_t errlen);

/* The names of variables the expression reads at top level (for
 * fetchVariables-style decisions); optional helper: fills up to max names
 * (borrowed pointers into expr, sorted, each once) and returns the total
 * count. Names bound by for/some/every are left out; names inside list
 * filters are kept even when they may name members of the elements, so the
 * set is a superset of what is read. */
size_t feel_expr_names(const struct feel_expr *expr, const char **names,
                       size_t max);

#endif /* TANDEM_ENGINE_FEEL_H */
