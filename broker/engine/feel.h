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
 * Supported (see docs/engine.md for the table):
 *   literals      null, true, false, numbers (12, -3.5, .5), "strings"
 *                 with \" \\ \n \t \uXXXX escapes, lists [1, 2],
 *                 contexts {a: 1, "b c": 2}
 *   names         variable paths a, a.b.c (a missing name or member is
 *                 null), list filters/index x[1] (1-based, -1 = last)
 *   arithmetic    + - * / ** and unary minus on numbers; + on strings
 *                 concatenates; arithmetic with null gives null
 *   comparison    = != < <= > >= (numbers, strings, booleans, null);
 *                 between x and y; x in [list] / x in (a..b)
 *   logic         and, or (three-valued, FEEL semantics), not(x)
 *   conditional   if c then a else b
 *   functions     string length, upper case, lower case, substring
 *                 (1-based start, optional length), contains, starts with,
 *                 ends with, string, number, abs, floor, ceiling, round
 *                 (decimal, with scale: round half even like FEEL
 *                 decimal(n, scale)), min, max, sum, count, is defined,
 *                 list contains, append, concatenate, distinct values,
 *                 modulo, sqrt, odd, even, not
 *
 * Errors: feel_parse() rejects malformed text with a message giving the
 * offending column; feel_eval() fails (returns FEEL_E_EVAL) only for hard
 * errors (unknown function, wrong argument count, division by zero, a
 * type mismatch that FEEL defines as an error here); most type mismatches
 * give null, as in FEEL. Depth and size are bounded (FEEL_DEPTH_MAX,
 * FEEL_TEXT_MAX) so hostile input cannot exhaust the stack.
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
 * "no function 'foo' with 2 arguments". Pure: no globals, no I/O. */
int feel_eval(const struct feel_expr *expr, const json_t *vars,
              json_t **out, char *err, size_t errlen);

/* The names of variables the expression reads at top level (for
 * fetchVariables-style decisions); optional helper: fills up to max names
 * (borrowed pointers into expr) and returns the total count. */
size_t feel_expr_names(const struct feel_expr *expr, const char **names,
                       size_t max);

#endif /* TANDEM_ENGINE_FEEL_H */
