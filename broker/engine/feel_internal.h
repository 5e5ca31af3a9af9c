/* feel_internal.h: what the three parts of the FEEL implementation share;
 * not part of the public API (feel.h).
 *
 *   feel.c       text --lexer--> tokens --recursive descent--> AST
 *                (struct feel_node in an arena owned by struct feel_expr)
 *   feel_eval.c  AST + variables --> JSON value, walking the AST with a
 *                bounded recursion (the AST depth is <= FEEL_DEPTH_MAX)
 *                and a step budget (FEEL_EVAL_STEPS_MAX)
 *   feel_fn.c    the built-in functions (table feel_fn_table) and the
 *                value helpers both others use: numbers, equality and
 *                ordering, strings, error reporting
 *
 * Every json_t * returned by a helper below is a new reference, or NULL
 * after feel_ctx_fail() recorded why. */
#ifndef TANDEM_ENGINE_FEEL_INTERNAL_H
#define TANDEM_ENGINE_FEEL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "broker/engine/feel.h"

/* Work one evaluation may do: AST nodes visited plus elements touched by
 * list functions. Keeps `for i in 1..1000000, j in 1..1000000` finite. */
#define FEEL_EVAL_STEPS_MAX 1000000UL
/* Bytes of strings one evaluation may build. */
#define FEEL_EVAL_BYTES_MAX ((size_t)16 << 20)
/* Nesting of JSON values the helpers recurse into (equality, string()). */
#define FEEL_VALUE_DEPTH_MAX 2048
/* Variables one for/some/every may bind. */
#define FEEL_BIND_MAX 16
/* Arguments one function call may have. */
#define FEEL_ARGS_MAX 1024

enum feel_kind {
    FEEL_N_CONST,    /* value */
    FEEL_N_NAME,     /* name: a variable (or a bound name) */
    FEEL_N_MEMBER,   /* kids[0].name */
    FEEL_N_FILTER,   /* kids[0][kids[1]] */
    FEEL_N_LIST,     /* [kids...] */
    FEEL_N_CONTEXT,  /* {names[i]: kids[i]} */
    FEEL_N_ARITH,    /* kids[0] ops[0] kids[1] ops[1] kids[2] ... */
    FEEL_N_NEG,      /* -kids[0] */
    FEEL_N_CMP,      /* kids[0] op kids[1] */
    FEEL_N_AND,      /* kids[0] and kids[1] and ... */
    FEEL_N_OR,       /* kids[0] or kids[1] or ... */
    FEEL_N_BETWEEN,  /* kids[0] between kids[1] and kids[2] */
    FEEL_N_IN,       /* kids[0] in (kids[1], kids[2], ...): unary tests */
    FEEL_N_TEST_CMP, /* unary test `op kids[0]` (only under FEEL_N_IN) */
    FEEL_N_INTERVAL, /* unary test kids[0]..kids[1], op = FEEL_IV_* bits */
    FEEL_N_RANGE,    /* for-domain kids[0]..kids[1] (only under FOR etc.) */
    FEEL_N_IF,       /* if kids[0] then kids[1] else kids[2] */
    FEEL_N_CALL,     /* fn(kids...); name as written */
    FEEL_N_FOR,      /* for names[i] in kids[i], ... return kids[last] */
    FEEL_N_SOME,     /* some names[i] in kids[i], ... satisfies kids[last] */
    FEEL_N_EVERY,    /* every names[i] in kids[i], ... satisfies kids[last] */
};

enum feel_op {
    FEEL_OP_ADD,
    FEEL_OP_SUB,
    FEEL_OP_MUL,
    FEEL_OP_DIV,
    FEEL_OP_POW,
    FEEL_OP_EQ,
    FEEL_OP_NE,
    FEEL_OP_LT,
    FEEL_OP_LE,
    FEEL_OP_GT,
    FEEL_OP_GE,
};

#define FEEL_IV_OPEN_LO 1 /* (a.. or ]a.. */
#define FEEL_IV_OPEN_HI 2 /* ..b) or ..b[ */

struct feel_fn;

struct feel_node {
    enum feel_kind kind;
    int op;                   /* CMP, TEST_CMP: enum feel_op; INTERVAL: bits */
    unsigned column;          /* 1-based column of the node's first token */
    unsigned depth;           /* 1 + the deepest kid; <= FEEL_DEPTH_MAX */
    json_t *value;            /* CONST: owned by feel_expr.consts */
    const char *name;         /* NAME, MEMBER, CALL (arena string) */
    const struct feel_fn *fn; /* CALL: NULL when no such function/arity */
    size_t nkids;
    struct feel_node **kids;
    unsigned char *ops; /* ARITH: nkids - 1 operators */
    const char **names; /* CONTEXT: nkids keys; FOR/SOME/EVERY: nkids-1 */
};

struct feel_chunk;

struct feel_expr {
    struct feel_node *root;
    struct feel_chunk *chunks; /* arena holding nodes, arrays and names */
    json_t *consts;            /* array owning every constant's value */
    const char **free_names;   /* distinct top-level variable names */
    size_t nfree_names;
};

/* One evaluation. */
struct feel_ctx {
    const json_t *vars; /* object of the variables, or NULL */
    char *err;
    size_t errlen;
    int rc;              /* first error (negative feel_errno), else 0 */
    unsigned long steps; /* left */
    size_t bytes;        /* left */
};

/* A chain of name bindings in front of the variables: a name bound to a
 * value (for/some/every variables, `item` in filters), or an object whose
 * members are visible (the element of a filter, a context literal being
 * built). */
struct feel_scope {
    const struct feel_scope *up;
    const char *name; /* NULL: value is an object whose members are bound */
    json_t *value;    /* borrowed */
};

enum feel_fn_id {
    FEEL_FN_PLAIN,
    FEEL_FN_IS_DEFINED, /* takes its argument unevaluated (feel_eval.c) */
};

#define FEEL_FN_VARARGS 0xffffu

/* A built-in function: args are borrowed, *out a new reference. Returns 0
 * or the negative error recorded with feel_ctx_fail(). */
typedef int feel_fn_call_t(struct feel_ctx *c, json_t *const *args, size_t n,
                           json_t **out);

struct feel_fn {
    const char *name;
    unsigned min_args;
    unsigned max_args; /* FEEL_FN_VARARGS: no maximum */
    enum feel_fn_id id;
    feel_fn_call_t *call;
};

/* The function called name taking nargs arguments, or NULL. */
const struct feel_fn *feel_fn_find(const char *name, size_t nargs);
/* The i-th function name (NULL past the end), for the lexer to match
 * names with spaces ("string length"). */
const char *feel_fn_name_at(size_t i);

/* Records the first error of the evaluation (later ones are dropped) and
 * returns NULL so callers can `return feel_ctx_fail(...)`. */
json_t *feel_ctx_fail(struct feel_ctx *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Takes n steps from the budget; false (error recorded) when exhausted. */
bool feel_ctx_charge(struct feel_ctx *c, unsigned long n);

/* Numbers: a FEEL number from a double (rounded to 15 significant digits,
 * integral values that fit 2^53 become JSON integers, non-finite -> null).
 */
json_t *feel_num_real(struct feel_ctx *c, double d);
json_t *feel_num_int(struct feel_ctx *c, json_int_t i);
/* a op b for enum feel_op ADD..POW on two values: numbers, strings (+),
 * anything else null; division by zero is an error. */
json_t *feel_num_arith(struct feel_ctx *c, int op, const json_t *a,
                       const json_t *b, unsigned column);
json_t *feel_num_negate(struct feel_ctx *c, const json_t *a);

/* Three-valued results: 1 true, 0 false, -1 null (not comparable). */
int feel_value_equal(const json_t *a, const json_t *b);
/* enum feel_op EQ..GE on a and b. */
int feel_value_compare(int op, const json_t *a, const json_t *b);
json_t *feel_value_bool(int tri);

/* Length of the valid UTF-8 sequence at s (avail > 0 bytes there), 0 if
 * invalid (overlong, surrogate, above U+10FFFF, truncated). */
size_t feel_utf8_seq(const unsigned char *s, size_t avail);

/* A new string value of n bytes (charged to the byte budget). */
json_t *feel_str_new(struct feel_ctx *c, const char *p, size_t n);

#endif /* TANDEM_ENGINE_FEEL_INTERNAL_H */
