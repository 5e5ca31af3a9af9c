/* feel_eval.c: evaluates a parsed FEEL expression (feel.c) against the
 * variables.
 *
 * Data flow: feel_eval() walks the AST from the root. Each node yields a
 * new jansson reference (or NULL once an error is recorded in the
 * struct feel_ctx); values of variables are shared (incref), never copied.
 * Names resolve through a chain of struct feel_scope on the C stack
 * (for/some/every variables, `item` and the members of the element inside
 * a filter, earlier entries of a context literal) and then the variables
 * object. The recursion follows the AST, whose depth the parser bounded by
 * FEEL_DEPTH_MAX; for/some/every add at most FEEL_BIND_MAX frames each.
 * Every node visited and every element iterated is charged to the step
 * budget, so any evaluation ends.
 *
 * Null semantics follow FEEL-Scala: a missing variable or member is null,
 * operators on null or on mismatched types give null, `and`/`or` are
 * three-valued, a condition that is not true takes the else branch. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "broker/engine/feel.h"
#include "broker/engine/feel_internal.h"

static json_t *feel_eval_node(struct feel_ctx *c, const struct feel_node *n,
                              const struct feel_scope *s);

/* The value bound to name (borrowed), or NULL with *found false. */
static json_t *feel_scope_lookup(const struct feel_ctx *c,
                                 const struct feel_scope *s, const char *name,
                                 bool *found)
{
    json_t *v;

    for (; s != NULL; s = s->up) {
        if (s->name != NULL) {
            if (strcmp(s->name, name) == 0) {
                *found = true;
                return s->value;
            }
        } else if (json_is_object(s->value) &&
                   (v = json_object_get(s->value, name)) != NULL) {
            *found = true;
            return v;
        }
    }
    if (c->vars != NULL && (v = json_object_get(c->vars, name)) != NULL) {
        *found = true;
        return v;
    }
    *found = false;
    return NULL;
}

/* base.name: a member of a context; on a list, the member of each element
 * (FEEL path projection); null otherwise. *found tells whether the member
 * exists (for `is defined`). */
static json_t *feel_eval_member(struct feel_ctx *c, const json_t *base,
                                const char *name, bool *found)
{
    json_t *v, *list;
    size_t i;

    if (json_is_object(base)) {
        v = json_object_get(base, name);
        *found = v != NULL;
        return v != NULL ? json_incref(v) : json_null();
    }
    if (!json_is_array(base)) {
        *found = false;
        return json_null();
    }
    *found = true;
    if (!feel_ctx_charge(c, json_array_size(base)) ||
        (list = json_array()) == NULL) {
        return c->rc != 0 ? NULL
                          : feel_ctx_fail(c, FEEL_E_NOMEM, "out of memory");
    }
    json_array_foreach(base, i, v)
    {
        json_t *m = json_is_object(v) ? json_object_get(v, name) : NULL;
        if (json_array_append_new(list, m != NULL ? json_incref(m)
                                                  : json_null()) != 0) {
            json_decref(list);
            return feel_ctx_fail(c, FEEL_E_NOMEM, "out of memory");
        }
    }
    return list;
}

/* Like feel_eval_node, but tells (for `is defined`) whether a name or path
 * exists; any other expression exists when it evaluates. */
static json_t *feel_eval_lookup(struct feel_ctx *c, const struct feel_node *n,
                                const struct feel_scope *s, bool *found)
{
    json_t *v, *base;

    if (n->kind == FEEL_N_NAME) {
        if (!feel_ctx_charge(c, 1)) {
            return NULL;
        }
        v = feel_scope_lookup(c, s, n->name, found);
        return v != NULL ? json_incref(v) : json_null();
    }
    if (n->kind == FEEL_N_MEMBER) {
        base = feel_eval_lookup(c, n->kids[0], s, found);
        if (base == NULL || !*found) {
            return base;
        }
        v = feel_eval_member(c, base, n->name, found);
        json_decref(base);
        return v;
    }
    *found = true;
    return feel_eval_node(c, n, s);
}

/* True if a filter expression is a condition on each element rather than
 * an index. */
static bool feel_filter_is_condition(const struct feel_node *f)
{
    switch (f->kind) {
    case FEEL_N_CMP:
    case FEEL_N_AND:
    case FEEL_N_OR:
    case FEEL_N_BETWEEN:
    case FEEL_N_IN:
    case FEEL_N_CALL:
    case FEEL_N_SOME:
    case FEEL_N_EVERY:
        return true;
    default:
        return false;
    }
}

/* list[i]: 1-based, negative from the end, null when out of range. */
static json_t *feel_eval_index(const json_t *list, const json_t *index)
{
    double d = json_number_value(index);
    double size = (double)json_array_size(list);
    json_t *v;

    assert(json_is_number(index));
    d = trunc(d);
    if (d >= 1 && d <= size) {
        v = json_array_get(list, (size_t)d - 1);
    } else if (d <= -1 && -d <= size) {
        v = json_array_get(list, (size_t)(size + d));
    } else {
        return json_null();
    }
    assert(v != NULL);
    return json_incref(v);
}

/* list[filter]: an index when the filter is a number, else the elements
 * for which the filter is true (with `item` and, for a context element,
 * its members in scope). Not a list: null. */
static json_t *feel_eval_filter(struct feel_ctx *c, const struct feel_node *n,
                                const struct feel_scope *s)
{
    const struct feel_node *f = n->kids[1];
    json_t *list, *out = NULL, *e;
    size_t i;

    if ((list = feel_eval_node(c, n->kids[0], s)) == NULL) {
        return NULL;
    }
    if (!json_is_array(list)) {
        json_decref(list);
        return json_null();
    }
    if (!feel_filter_is_condition(f)) {
        json_t *idx = feel_eval_node(c, f, s);
        if (idx == NULL) {
            goto out;
        }
        if (json_is_number(idx)) {
            out = feel_eval_index(list, idx);
            json_decref(idx);
            goto out;
        }
        json_decref(idx);
    }
    if ((out = json_array()) == NULL) {
        feel_ctx_fail(c, FEEL_E_NOMEM, "out of memory");
        goto out;
    }
    json_array_foreach(list, i, e)
    {
        struct feel_scope item = {.up = s, .name = "item", .value = e};
        struct feel_scope members = {.up = &item, .name = NULL, .value = e};
        json_t *keep = feel_eval_node(c, f, &members);
        if (keep == NULL) {
            json_decref(out);
            out = NULL;
            goto out;
        }
        if (json_is_true(keep) && json_array_append(out, e) != 0) {
            json_decref(keep);
            json_decref(out);
            out = feel_ctx_fail(c, FEEL_E_NOMEM, "out of memory");
            goto out;
        }
        json_decref(keep);
    }
out:
    json_decref(list);
    return out;
}

static json_t *feel_eval_list(struct feel_ctx *c, const struct feel_node *n,
                              const struct feel_scope *s)
{
    json_t *list = json_array();

    if (list == NULL) {
        return feel_ctx_fail(c, FEEL_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n->nkids; i++) {
        json_t *v = feel_eval_node(c, n->kids[i], s);
        if (v == NULL) {
            json_decref(list);
            return NULL;
        }
        if (json_array_append_new(list, v) != 0) {
            json_decref(list);
            return feel_ctx_fail(c, FEEL_E_NOMEM, "out of memory");
        }
    }
    return list;
}

/* {k: v, ...}: later entries see the earlier ones. */
static json_t *feel_eval_context(struct feel_ctx *c, const struct feel_node *n,
                                 const struct feel_scope *s)
{
    json_t *obj = json_object();
    struct feel_scope self = {.up = s, .name = NULL, .value = obj};

    if (obj == NULL) {
        return feel_ctx_fail(c, FEEL_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n->nkids; i++) {
        json_t *v = feel_eval_node(c, n->kids[i], &self);
        if (v == NULL) {
            json_decref(obj);
            return NULL;
        }
        if (json_object_set_new(obj, n->names[i], v) != 0) {
            json_decref(obj);
            return feel_ctx_fail(c, FEEL_E_NOMEM, "out of memory");
        }
    }
    return obj;
}

static json_t *feel_eval_arith(struct feel_ctx *c, const struct feel_node *n,
                               const struct feel_scope *s)
{
    json_t *acc = feel_eval_node(c, n->kids[0], s);

    assert(n->nkids >= 2);
    for (size_t i = 1; acc != NULL && i < n->nkids; i++) {
        json_t *b = feel_eval_node(c, n->kids[i], s), *r = NULL;
        if (b != NULL) {
            r = feel_num_arith(c, n->ops[i - 1], acc, b, n->column);
            json_decref(b);
        }
        json_decref(acc);
        acc = r;
    }
    return acc;
}

/* and / or over n->kids, three-valued: `and` is false if any operand is
 * false, true if all are true, else null; `or` the dual. Evaluation stops
 * at the first deciding operand. */
static json_t *feel_eval_logic(struct feel_ctx *c, const struct feel_node *n,
                               const struct feel_scope *s)
{
    bool is_and = n->kind == FEEL_N_AND;
    bool unknown = false;

    for (size_t i = 0; i < n->nkids; i++) {
        json_t *v = feel_eval_node(c, n->kids[i], s);
        bool t, f;
        if (v == NULL) {
            return NULL;
        }
        t = json_is_true(v);
        f = json_is_false(v);
        json_decref(v);
        if (is_and && f) {
            return json_false();
        }
        if (!is_and && t) {
            return json_true();
        }
        if (!t && !f) {
            unknown = true;
        }
    }
    if (unknown) {
        return json_null();
    }
    return is_and ? json_true() : json_false();
}

static int feel_tri_and(int a, int b)
{
    if (a == 0 || b == 0) {
        return 0;
    }
    return a == 1 && b == 1 ? 1 : -1;
}

/* Whether x passes one unary test: 1, 0, -1 (null), or -2 on error. */
static int feel_eval_test(struct feel_ctx *c, const struct feel_node *t,
                          const json_t *x, const struct feel_scope *s)
{
    json_t *a, *b, *v, *e;
    int r;
    size_t i;

    switch (t->kind) {
    case FEEL_N_TEST_CMP:
        if ((a = feel_eval_node(c, t->kids[0], s)) == NULL) {
            return -2;
        }
        r = feel_value_compare(t->op, x, a);
        json_decref(a);
        return r;
    case FEEL_N_INTERVAL:
        if ((a = feel_eval_node(c, t->kids[0], s)) == NULL) {
            return -2;
        }
        if ((b = feel_eval_node(c, t->kids[1], s)) == NULL) {
            json_decref(a);
            return -2;
        }
        r = feel_tri_and(
            feel_value_compare(
                t->op & FEEL_IV_OPEN_LO ? FEEL_OP_GT : FEEL_OP_GE, x, a),
            feel_value_compare(
                t->op & FEEL_IV_OPEN_HI ? FEEL_OP_LT : FEEL_OP_LE, x, b));
        json_decref(a);
        json_decref(b);
        return r;
    default:
        if ((v = feel_eval_node(c, t, s)) == NULL) {
            return -2;
        }
        if (!json_is_array(v)) {
            r = feel_value_equal(x, v);
            json_decref(v);
            return r;
        }
        /* a list: x is one of its elements (or the list itself) */
        r = 0;
        if (!feel_ctx_charge(c, json_array_size(v))) {
            json_decref(v);
            return -2;
        }
        json_array_foreach(v, i, e)
        {
            if (feel_value_equal(x, e) == 1) {
                r = 1;
                break;
            }
        }
        if (r == 0 && json_is_array(x) && feel_value_equal(x, v) == 1) {
            r = 1;
        }
        json_decref(v);
        return r;
    }
}

/* x in (t1, t2, ...): true if a test passes, else null if one could not
 * decide, else false. */
static json_t *feel_eval_in(struct feel_ctx *c, const struct feel_node *n,
                            const struct feel_scope *s)
{
    json_t *x = feel_eval_node(c, n->kids[0], s);
    bool unknown = false;

    if (x == NULL) {
        return NULL;
    }
    for (size_t i = 1; i < n->nkids; i++) {
        int r = feel_eval_test(c, n->kids[i], x, s);
        if (r == -2) {
            json_decref(x);
            return NULL;
        }
        if (r == 1) {
            json_decref(x);
            return json_true();
        }
        if (r == -1) {
            unknown = true;
        }
    }
    json_decref(x);
    return unknown ? json_null() : json_false();
}

static json_t *feel_eval_between(struct feel_ctx *c, const struct feel_node *n,
                                 const struct feel_scope *s)
{
    json_t *v[3] = {NULL, NULL, NULL};
    json_t *out = NULL;
    int i;

    for (i = 0; i < 3; i++) {
        if ((v[i] = feel_eval_node(c, n->kids[i], s)) == NULL) {
            goto out;
        }
    }
    out = feel_value_bool(
        feel_tri_and(feel_value_compare(FEEL_OP_GE, v[0], v[1]),
                     feel_value_compare(FEEL_OP_LE, v[0], v[2])));
out:
    for (i = 0; i < 3; i++) {
        json_decref(v[i]);
    }
    return out;
}

static json_t *feel_eval_call(struct feel_ctx *c, const struct feel_node *n,
                              const struct feel_scope *s)
{
    json_t **args;
    json_t *out = NULL;
    size_t i;
    int rc;

    if (n->fn == NULL) {
        return feel_ctx_fail(c, FEEL_E_EVAL,
                             "no function '%s' with %zu argument%s at column "
                             "%u",
                             n->name, n->nkids, n->nkids == 1 ? "" : "s",
                             n->column);
    }
    assert(n->nkids >= n->fn->min_args);
    if (n->fn->id == FEEL_FN_IS_DEFINED) {
        bool found = false;
        json_t *v = feel_eval_lookup(c, n->kids[0], s, &found);
        if (v == NULL) {
            return NULL;
        }
        json_decref(v);
        return found ? json_true() : json_false();
    }
    args = calloc(n->nkids + 1, sizeof(*args));
    if (args == NULL) {
        return feel_ctx_fail(c, FEEL_E_NOMEM, "out of memory");
    }
    for (i = 0; i < n->nkids; i++) {
        if ((args[i] = feel_eval_node(c, n->kids[i], s)) == NULL) {
            goto out;
        }
    }
    rc = n->fn->call(c, args, n->nkids, &out);
    assert((rc == 0) == (out != NULL));
    assert(rc == 0 || c->rc != 0);
    (void)rc;
out:
    for (i = 0; i < n->nkids; i++) {
        json_decref(args[i]);
    }
    free(args);
    return out;
}

/* State of one for/some/every evaluation. */
struct feel_iter {
    const struct feel_node *n;
    size_t nvars;
    json_t *results;  /* for: the list being built */
    bool decided;     /* some: found a true; every: found a non-true */
    bool null_domain; /* a domain was not a list or a range: null */
};

/* Binds variable i to each element of its domain and recurses; at the
 * innermost level evaluates the body. Returns 0, or -1 on error. */
static int feel_eval_iter(struct feel_ctx *c, struct feel_iter *it, size_t i,
                          const struct feel_scope *s)
{
    const struct feel_node *n = it->n;
    const struct feel_node *dom = n->kids[i];
    json_t *body, *list, *e;
    size_t k;
    int rv = 0;

    if (i == it->nvars) {
        if ((body = feel_eval_node(c, n->kids[i], s)) == NULL) {
            return -1;
        }
        if (n->kind == FEEL_N_FOR) {
            if (json_array_append_new(it->results, body) != 0) {
                feel_ctx_fail(c, FEEL_E_NOMEM, "out of memory");
                return -1;
            }
            return 0;
        }
        if ((n->kind == FEEL_N_SOME) == json_is_true(body)) {
            it->decided = true;
        }
        json_decref(body);
        return 0;
    }
    if (dom->kind == FEEL_N_RANGE) {
        json_t *lo = feel_eval_node(c, dom->kids[0], s), *hi;
        json_int_t a, b, step;
        if (lo == NULL) {
            return -1;
        }
        if ((hi = feel_eval_node(c, dom->kids[1], s)) == NULL) {
            json_decref(lo);
            return -1;
        }
        if (!json_is_integer(lo) || !json_is_integer(hi)) {
            json_decref(lo);
            json_decref(hi);
            it->null_domain = true;
            return 0;
        }
        a = json_integer_value(lo);
        b = json_integer_value(hi);
        json_decref(lo);
        json_decref(hi);
        step = a <= b ? 1 : -1;
        for (json_int_t v = a;; v += step) {
            struct feel_scope bind = {.up = s, .name = n->names[i]};
            if (!feel_ctx_charge(c, 1) ||
                (bind.value = feel_num_int(c, v)) == NULL) {
                return -1;
            }
            rv = feel_eval_iter(c, it, i + 1, &bind);
            json_decref(bind.value);
            if (rv != 0 || it->decided || it->null_domain || v == b) {
                return rv;
            }
        }
    }
    if ((list = feel_eval_node(c, dom, s)) == NULL) {
        return -1;
    }
    if (!json_is_array(list)) {
        json_decref(list);
        it->null_domain = true;
        return 0;
    }
    json_array_foreach(list, k, e)
    {
        struct feel_scope bind = {.up = s, .name = n->names[i], .value = e};
        if (!feel_ctx_charge(c, 1)) {
            rv = -1;
            break;
        }
        rv = feel_eval_iter(c, it, i + 1, &bind);
        if (rv != 0 || it->decided || it->null_domain) {
            break;
        }
    }
    json_decref(list);
    return rv;
}

/* for ... return: the list of the bodies; some/every ... satisfies: a
 * boolean (some of nothing is false, every of nothing true). */
static json_t *feel_eval_iteration(struct feel_ctx *c,
                                   const struct feel_node *n,
                                   const struct feel_scope *s)
{
    struct feel_iter it = {.n = n, .nvars = n->nkids - 1};

    assert(n->nkids >= 2);
    assert(it.nvars <= FEEL_BIND_MAX);
    if (n->kind == FEEL_N_FOR && (it.results = json_array()) == NULL) {
        return feel_ctx_fail(c, FEEL_E_NOMEM, "out of memory");
    }
    if (feel_eval_iter(c, &it, 0, s) != 0) {
        json_decref(it.results);
        return NULL;
    }
    if (it.null_domain) {
        json_decref(it.results);
        return json_null();
    }
    if (n->kind == FEEL_N_FOR) {
        return it.results;
    }
    return (n->kind == FEEL_N_SOME) == it.decided ? json_true() : json_false();
}

static json_t *feel_eval_node(struct feel_ctx *c, const struct feel_node *n,
                              const struct feel_scope *s)
{
    json_t *v, *w;
    bool found;

    assert(n != NULL);
    assert(n->depth <= FEEL_DEPTH_MAX);
    if (!feel_ctx_charge(c, 1)) {
        return NULL;
    }
    switch (n->kind) {
    case FEEL_N_CONST:
        return json_incref(n->value);
    case FEEL_N_NAME:
        v = feel_scope_lookup(c, s, n->name, &found);
        return v != NULL ? json_incref(v) : json_null();
    case FEEL_N_MEMBER:
        if ((v = feel_eval_node(c, n->kids[0], s)) == NULL) {
            return NULL;
        }
        w = feel_eval_member(c, v, n->name, &found);
        json_decref(v);
        return w;
    case FEEL_N_FILTER:
        return feel_eval_filter(c, n, s);
    case FEEL_N_LIST:
        return feel_eval_list(c, n, s);
    case FEEL_N_CONTEXT:
        return feel_eval_context(c, n, s);
    case FEEL_N_ARITH:
        return feel_eval_arith(c, n, s);
    case FEEL_N_NEG:
        if ((v = feel_eval_node(c, n->kids[0], s)) == NULL) {
            return NULL;
        }
        w = feel_num_negate(c, v);
        json_decref(v);
        return w;
    case FEEL_N_CMP:
        if ((v = feel_eval_node(c, n->kids[0], s)) == NULL) {
            return NULL;
        }
        if ((w = feel_eval_node(c, n->kids[1], s)) == NULL) {
            json_decref(v);
            return NULL;
        }
        {
            int r = feel_value_compare(n->op, v, w);
            json_decref(v);
            json_decref(w);
            return feel_value_bool(r);
        }
    case FEEL_N_AND:
    case FEEL_N_OR:
        return feel_eval_logic(c, n, s);
    case FEEL_N_BETWEEN:
        return feel_eval_between(c, n, s);
    case FEEL_N_IN:
        return feel_eval_in(c, n, s);
    case FEEL_N_IF:
        if ((v = feel_eval_node(c, n->kids[0], s)) == NULL) {
            return NULL;
        }
        found = json_is_true(v);
        json_decref(v);
        return feel_eval_node(c, n->kids[found ? 1 : 2], s);
    case FEEL_N_CALL:
        return feel_eval_call(c, n, s);
    case FEEL_N_FOR:
    case FEEL_N_SOME:
    case FEEL_N_EVERY:
        return feel_eval_iteration(c, n, s);
    case FEEL_N_TEST_CMP:
    case FEEL_N_INTERVAL:
    case FEEL_N_RANGE:
        break; /* only under IN / FOR nodes, evaluated there */
    }
    return feel_ctx_fail(c, FEEL_E_EVAL,
                         "internal error: node kind %d out of place at "
                         "column %u",
                         (int)n->kind, n->column);
}

int feel_eval(const struct feel_expr *expr, const json_t *vars, json_t **out,
              char *err, size_t errlen)
{
    struct feel_ctx c = {
        .vars = vars,
        .err = err,
        .errlen = errlen,
        .steps = FEEL_EVAL_STEPS_MAX,
        .bytes = FEEL_EVAL_BYTES_MAX,
    };
    json_t *v;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (out == NULL) {
        return FEEL_E_EVAL;
    }
    *out = NULL;
    if (expr == NULL || expr->root == NULL) {
        feel_ctx_fail(&c, FEEL_E_EVAL, "no expression to evaluate");
        return c.rc;
    }
    if (vars != NULL && !json_is_object(vars)) {
        feel_ctx_fail(&c, FEEL_E_EVAL, "the variables must be a JSON object");
        return c.rc;
    }
    v = feel_eval_node(&c, expr->root, NULL);
    if (v == NULL) {
        assert(c.rc < 0);
        return c.rc;
    }
    assert(c.rc == 0);
    *out = v;
    return 0;
}
