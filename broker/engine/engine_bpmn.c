/* engine_bpmn.c: BPMN execution: process instance creation, the element
 * lifecycle processors, variables and FEEL evaluation, incidents on
 * elements, error boundary events, cancellation, and the per-definition
 * cache of parsed models.
 *
 * Data flow (Zeebe's semantics): a COMMAND ACTIVATE_ELEMENT for an element
 * -> ELEMENT_ACTIVATING -> element-specific work (input mappings and a
 * JOB CREATED for service tasks; conditions for exclusive gateways) ->
 * ELEMENT_ACTIVATED -> either a wait (service task) or ELEMENT_COMPLETING
 * -> ELEMENT_COMPLETED -> SEQUENCE_FLOW_TAKEN per outgoing flow -> COMMAND
 * ACTIVATE_ELEMENT for each target (processed later in the same round).
 * A flow scope (the process) completes when it has neither active children
 * nor tokens in flight (struct eng_elem_hdr). Expression failures raise
 * incidents and leave the element where it stopped (ACTIVATING or
 * COMPLETING); resolving the incident re-runs that step.
 *
 * Models: parsed from the PROCESS record's XML on first use and cached in
 * memory by definition key and checksum (never in the state); a cached
 * entry is trusted only while the stored checksum matches.
 */
#define _POSIX_C_SOURCE 200809L
#include "broker/engine/engine_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENG_INC_MSG_BYTES 1024u

/* ------------------------------------------------------------------------
 * Model cache
 * --------------------------------------------------------------------- */

void eng_models_clear(struct engine *e)
{
    for (size_t i = 0; i < ENG_MODELS_MAX; i++) {
        if (e->models[i].defs != NULL)
            bpmn_definitions_free(e->models[i].defs);
        memset(&e->models[i], 0, sizeof e->models[i]);
    }
}

const struct eng_model *eng_model_get(struct eng_ctx *c, uint64_t def_key,
                                      char *err, size_t errlen)
{
    struct engine *e = c->e;
    unsigned char k[8];
    MDB_val v;
    size_t victim = 0;

    eng_key8(k, def_key);
    if (eng_get(c, ENG_T_PROC, k, 8, &v) != 0 || v.mv_size < 32) {
        snprintf(err, errlen,
                 "Expected to find process definition with key '%" PRIu64
                 "', but none found",
                 def_key);
        return NULL;
    }
    e->model_tick++;
    for (size_t i = 0; i < ENG_MODELS_MAX; i++) {
        struct eng_model *m = &e->models[i];
        if (m->key == def_key && memcmp(m->sum, v.mv_data, 32) == 0) {
            m->used = e->model_tick;
            return m;
        }
        if (m->used < e->models[victim].used)
            victim = i;
    }
    Tandem__Record__ProcessRecordValue *p =
        tandem__record__process_record_value__unpack(
            NULL, v.mv_size - 32, (const unsigned char *)v.mv_data + 32);
    if (p == NULL) {
        snprintf(err, errlen,
                 "process definition '%" PRIu64 "' does not decode", def_key);
        return NULL;
    }
    struct bpmn_definitions *d = NULL;
    char perr[512];
    if (bpmn_parse((const char *)p->resource.data, p->resource.len,
                   p->resource_name, &d, perr, sizeof perr) != 0) {
        snprintf(err, errlen,
                 "process definition '%" PRIu64 "' does not parse: %s", def_key,
                 perr);
        tandem__record__process_record_value__free_unpacked(p, NULL);
        return NULL;
    }
    const struct bpmn_process *proc = NULL;
    for (size_t i = 0; i < d->n_processes; i++)
        if (strcmp(d->processes[i].id, p->bpmn_process_id) == 0)
            proc = &d->processes[i];
    if (proc == NULL) {
        snprintf(err, errlen, "process '%s' is missing from its resource",
                 p->bpmn_process_id);
        bpmn_definitions_free(d);
        tandem__record__process_record_value__free_unpacked(p, NULL);
        return NULL;
    }
    struct eng_model *m = &e->models[victim];
    if (m->defs != NULL)
        bpmn_definitions_free(m->defs);
    m->key = def_key;
    memcpy(m->sum, v.mv_data, 32);
    m->defs = d;
    m->proc = proc;
    m->used = e->model_tick;
    tandem__record__process_record_value__free_unpacked(p, NULL);
    return m;
}

/* ------------------------------------------------------------------------
 * JSON and variables
 * --------------------------------------------------------------------- */

char *eng_json_dump(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

struct eng_vars_acc {
    json_t *obj;
    bool overwrite;
    int rc;
};

static int eng_vars_collect(void *arg, const MDB_val *k, const MDB_val *v)
{
    struct eng_vars_acc *a = arg;
    char name[ENG_NAME_BYTES_MAX + 1];
    size_t n = k->mv_size - 8;

    if (k->mv_size <= 8 || n > ENG_NAME_BYTES_MAX || v->mv_size < 8) {
        a->rc = ENGINE_E_CORRUPT;
        return 1;
    }
    memcpy(name, (const char *)k->mv_data + 8, n);
    name[n] = 0;
    if (!a->overwrite && json_object_get(a->obj, name) != NULL)
        return 0;
    json_t *val = json_loadb((const char *)v->mv_data + 8, v->mv_size - 8,
                             JSON_DECODE_ANY, NULL);
    if (val == NULL) {
        a->rc = ENGINE_E_CORRUPT;
        return 1;
    }
    json_object_set_new(a->obj, name, val);
    return 0;
}

int eng_vars_local(struct eng_ctx *c, uint64_t scope, json_t **out)
{
    struct eng_vars_acc a = {json_object(), true, 0};
    unsigned char k[8];
    int rc;

    if (a.obj == NULL)
        return c->fail = ENGINE_E_NOMEM;
    eng_key8(k, scope);
    rc = eng_each_prefix(c, ENG_T_VAR, k, 8, SIZE_MAX, eng_vars_collect, &a);
    if (rc < 0 || a.rc != 0) {
        json_decref(a.obj);
        return rc < 0 ? rc : (c->fail = a.rc);
    }
    *out = a.obj;
    return 0;
}

int eng_vars_visible(struct eng_ctx *c, uint64_t scope, json_t **out)
{
    struct eng_vars_acc a = {json_object(), false, 0};
    uint64_t s = scope;

    if (a.obj == NULL)
        return c->fail = ENGINE_E_NOMEM;
    for (unsigned depth = 0; depth < ENG_SCOPE_DEPTH_MAX && s > 0; depth++) {
        unsigned char k[8];
        Tandem__Record__ProcessInstanceRecordValue *pv = NULL;
        eng_key8(k, s);
        int rc =
            eng_each_prefix(c, ENG_T_VAR, k, 8, SIZE_MAX, eng_vars_collect, &a);
        if (rc < 0 || a.rc != 0) {
            json_decref(a.obj);
            return rc < 0 ? rc : (c->fail = a.rc);
        }
        rc = eng_elem_get(c, s, NULL, &pv);
        if (rc != 0)
            break;
        s = pv->flow_scope_key > 0 ? (uint64_t)pv->flow_scope_key : 0;
        tandem__record__process_instance_record_value__free_unpacked(pv, NULL);
    }
    *out = a.obj;
    return 0;
}

/* Whether scope has a variable name (0 no, 1 yes, < 0 error). */
static int eng_var_exists(struct eng_ctx *c, uint64_t scope, const char *name)
{
    unsigned char k[8 + ENG_NAME_BYTES_MAX];
    size_t n = strlen(name);
    MDB_val v;
    int rc;

    if (n == 0 || n > ENG_NAME_BYTES_MAX)
        return 0;
    eng_put_u64(k, scope);
    memcpy(k + 8, name, n);
    rc = eng_get(c, ENG_T_VAR, k, 8 + n, &v);
    return rc == 0 ? 1 : rc == ENG_NOTFOUND ? 0 : rc;
}

/* Sets a variable in scope (writing VARIABLE CREATED or UPDATED unless
 * the value is unchanged). info names the instance the scope belongs to. */
static int eng_var_write(struct eng_ctx *c, uint64_t scope, const char *name,
                         const json_t *value,
                         const Tandem__Record__ProcessInstanceRecordValue *info)
{
    unsigned char k[8 + ENG_NAME_BYTES_MAX];
    size_t n = strlen(name);
    uint64_t key;
    uint32_t intent;
    MDB_val v;
    int rc;

    if (n == 0 || n > ENG_NAME_BYTES_MAX)
        return 0; /* validated earlier: names of 1..255 bytes */
    char *text = eng_json_dump(value);
    if (text == NULL)
        return c->fail = ENGINE_E_NOMEM;
    eng_put_u64(k, scope);
    memcpy(k + 8, name, n);
    rc = eng_get(c, ENG_T_VAR, k, 8 + n, &v);
    if (rc < 0) {
        free(text);
        return rc;
    }
    if (rc == 0) {
        if (v.mv_size - 8 == strlen(text) &&
            memcmp((const char *)v.mv_data + 8, text, v.mv_size - 8) == 0) {
            free(text);
            return 0;
        }
        key = eng_get_u64(v.mv_data);
        intent = VAR_UPDATED;
    } else {
        key = eng_key_next(c);
        intent = VAR_CREATED;
    }
    Tandem__Record__VariableRecordValue vr =
        TANDEM__RECORD__VARIABLE_RECORD_VALUE__INIT;
    vr.name = (char *)name;
    vr.value = text;
    vr.scope_key = (int64_t)scope;
    vr.process_instance_key = info->process_instance_key;
    vr.process_definition_key = info->process_definition_key;
    vr.bpmn_process_id = info->bpmn_process_id;
    vr.tenant_id = info->tenant_id;
    rc = eng_emit(c, RT_EVENT, VT_VARIABLE, intent, key,
                  (const ProtobufCMessage *)&vr, NULL);
    free(text);
    return rc;
}

int eng_vars_merge(struct eng_ctx *c, uint64_t scope, const json_t *doc,
                   bool local)
{
    Tandem__Record__ProcessInstanceRecordValue *info = NULL;
    const char *name;
    json_t *val;
    int rc;

    rc = eng_elem_get(c, scope, NULL, &info);
    if (rc != 0)
        return rc == ENG_NOTFOUND ? 0 : rc;
    json_object_foreach((json_t *)doc, name, val)
    {
        uint64_t s = scope, target = scope;
        if (!local) {
            /* The nearest scope that has it, else the root. */
            for (unsigned d = 0; d < ENG_SCOPE_DEPTH_MAX; d++) {
                Tandem__Record__ProcessInstanceRecordValue *pv = NULL;
                int ex = eng_var_exists(c, s, name);
                if (ex < 0) {
                    rc = ex;
                    break;
                }
                target = s;
                if (ex == 1)
                    break;
                if (eng_elem_get(c, s, NULL, &pv) != 0)
                    break;
                int64_t up = pv->flow_scope_key;
                tandem__record__process_instance_record_value__free_unpacked(
                    pv, NULL);
                if (up <= 0)
                    break;
                s = (uint64_t)up;
            }
        }
        if (rc == 0)
            rc = eng_var_write(c, target, name, val, info);
        if (rc != 0)
            break;
    }
    tandem__record__process_instance_record_value__free_unpacked(info, NULL);
    return rc;
}

/* Sets target (a name or dotted path) to value inside doc; base holds the
 * visible variables an existing object is merged from. */
static int eng_set_path(json_t *doc, const char *target, json_t *value,
                        const json_t *base)
{
    char buf[1024];
    char *save = NULL;
    size_t n = strlen(target);

    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, target, n + 1);
    char *seg = strtok_r(buf, ".", &save);
    char *next = seg ? strtok_r(NULL, ".", &save) : NULL;
    if (seg == NULL)
        return -1;
    if (next == NULL)
        return json_object_set(doc, seg, value);
    json_t *obj = json_object_get(doc, seg);
    if (obj == NULL || !json_is_object(obj)) {
        const json_t *b = base ? json_object_get(base, seg) : NULL;
        obj =
            b != NULL && json_is_object(b) ? json_deep_copy(b) : json_object();
        if (obj == NULL || json_object_set_new(doc, seg, obj) != 0)
            return -1;
    }
    /* Descend for the remaining segments. */
    while (next != NULL) {
        char *after = strtok_r(NULL, ".", &save);
        if (after == NULL)
            return json_object_set(obj, next, value);
        json_t *child = json_object_get(obj, next);
        if (child == NULL || !json_is_object(child)) {
            child = json_object();
            if (child == NULL || json_object_set_new(obj, next, child) != 0)
                return -1;
        }
        obj = child;
        next = after;
    }
    return 0;
}

/* Evaluates a FEEL expression; 0 or -1 with the incident message in err. */
static int eng_eval(const char *text, const json_t *vars, json_t **out,
                    char *err, size_t errlen)
{
    struct feel_expr *x = NULL;
    char ferr[512];
    int rc;

    rc = feel_parse(text, &x, ferr, sizeof ferr);
    if (rc == 0) {
        rc = feel_eval(x, vars, out, ferr, sizeof ferr);
        feel_expr_free(x);
    }
    if (rc != 0) {
        snprintf(err, errlen, "Failed to evaluate expression '%s': %s", text,
                 ferr);
        return -1;
    }
    return 0;
}

static const char *eng_feel_type(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "CONTEXT";
    case JSON_ARRAY:
        return "LIST";
    case JSON_STRING:
        return "STRING";
    case JSON_INTEGER:
    case JSON_REAL:
        return "NUMBER";
    case JSON_TRUE:
    case JSON_FALSE:
        return "BOOLEAN";
    default:
        return "NULL";
    }
}

/* ------------------------------------------------------------------------
 * Element values and records
 * --------------------------------------------------------------------- */

static const char *eng_event_type(enum bpmn_element_type t)
{
    switch (t) {
    case BPMN_START_EVENT:
    case BPMN_END_EVENT:
        return "NONE";
    case BPMN_BOUNDARY_EVENT:
        return "ERROR";
    default:
        return "UNSPECIFIED";
    }
}

/* The value of element el in the flow scope described by scope_pv (borrows
 * strings of both). */
static Tandem__Record__ProcessInstanceRecordValue
eng_child_value(const Tandem__Record__ProcessInstanceRecordValue *scope_pv,
                uint64_t scope_key, const struct bpmn_element *el)
{
    Tandem__Record__ProcessInstanceRecordValue v = *scope_pv;
    v.element_id = el->id;
    v.flow_scope_key = (int64_t)scope_key;
    v.bpmn_element_type = (char *)bpmn_element_type_name(el->type);
    v.bpmn_event_type = (char *)eng_event_type(el->type);
    return v;
}

static int eng_pi(struct eng_ctx *c, Tandem__Record__RecordType rt,
                  uint32_t intent, uint64_t key,
                  const Tandem__Record__ProcessInstanceRecordValue *v,
                  const struct eng_answer *ans)
{
    return eng_emit(c, rt, VT_PI, intent, key, (const ProtobufCMessage *)v,
                    ans);
}

int eng_incident_raise(struct eng_ctx *c, const char *error_type,
                       const char *message, uint64_t elem_key,
                       const Tandem__Record__ProcessInstanceRecordValue *pv,
                       int64_t job_key)
{
    Tandem__Record__IncidentRecordValue inc =
        TANDEM__RECORD__INCIDENT_RECORD_VALUE__INIT;
    inc.error_type = (char *)error_type;
    inc.error_message = (char *)message;
    inc.bpmn_process_id = pv->bpmn_process_id;
    inc.process_definition_key = pv->process_definition_key;
    inc.process_instance_key = pv->process_instance_key;
    inc.element_id = pv->element_id;
    inc.element_instance_key = (int64_t)elem_key;
    inc.job_key = job_key;
    inc.variable_scope_key = (int64_t)elem_key;
    inc.tenant_id = pv->tenant_id;
    return eng_emit(c, RT_EVENT, VT_INCIDENT, INC_CREATED, eng_key_next(c),
                    (const ProtobufCMessage *)&inc, NULL);
}

struct eng_key_list {
    uint64_t *keys;
    size_t n, cap;
    bool nomem;
};

static int eng_collect_second(void *arg, const MDB_val *k, const MDB_val *v)
{
    struct eng_key_list *l = arg;
    (void)v;
    if (k->mv_size != 16)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        uint64_t *p = realloc(l->keys, cap * sizeof *p);
        if (p == NULL) {
            l->nomem = true;
            return 1;
        }
        l->keys = p;
        l->cap = cap;
    }
    l->keys[l->n++] = eng_get_u64((const unsigned char *)k->mv_data + 8);
    return 0;
}

/* The second halves of the 16-byte keys under an 8-byte prefix. */
static int eng_list16(struct eng_ctx *c, enum eng_table t, uint64_t prefix,
                      struct eng_key_list *out)
{
    unsigned char k[8];
    eng_key8(k, prefix);
    int rc = eng_each_prefix(c, t, k, 8, SIZE_MAX, eng_collect_second, out);
    if (out->nomem)
        return c->fail = ENGINE_E_NOMEM;
    return rc < 0 ? rc : 0;
}

static int eng_resolve_incidents_of(struct eng_ctx *c, uint64_t elem_key)
{
    struct eng_key_list l = {0};
    int rc = eng_list16(c, ENG_T_INCIDENT_ELEM, elem_key, &l);

    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        unsigned char k[8];
        MDB_val v;
        eng_key8(k, l.keys[i]);
        rc = eng_get(c, ENG_T_INCIDENT, k, 8, &v);
        if (rc == ENG_NOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc != 0)
            break;
        void *copy = malloc(v.mv_size + 1);
        if (copy == NULL) {
            rc = c->fail = ENGINE_E_NOMEM;
            break;
        }
        memcpy(copy, v.mv_data, v.mv_size);
        Tandem__Record__IncidentRecordValue *inc =
            tandem__record__incident_record_value__unpack(NULL, v.mv_size,
                                                          copy);
        free(copy);
        if (inc == NULL) {
            rc = c->fail = ENGINE_E_CORRUPT;
            break;
        }
        rc = eng_emit(c, RT_EVENT, VT_INCIDENT, INC_RESOLVED, l.keys[i],
                      (const ProtobufCMessage *)inc, NULL);
        tandem__record__incident_record_value__free_unpacked(inc, NULL);
    }
    free(l.keys);
    return rc;
}

/* ------------------------------------------------------------------------
 * Flow
 * --------------------------------------------------------------------- */

/* A path ended in scope: complete the scope when nothing is left. */
static int eng_path_completed(struct eng_ctx *c, int64_t scope)
{
    Tandem__Record__ProcessInstanceRecordValue *spv = NULL;
    struct eng_elem_hdr h;
    int rc;

    if (scope <= 0)
        return 0;
    rc = eng_elem_get(c, (uint64_t)scope, &h, &spv);
    if (rc != 0)
        return rc == ENG_NOTFOUND ? 0 : rc;
    if (h.children == 0 && h.flows == 0 && h.state == PI_ACTIVATED)
        rc = eng_pi(c, RT_COMMAND, PI_COMPLETE, (uint64_t)scope, spv, NULL);
    tandem__record__process_instance_record_value__free_unpacked(spv, NULL);
    return rc;
}

static int eng_join_ready(struct eng_ctx *c, uint64_t scope,
                          const struct bpmn_process *p,
                          const struct bpmn_element *g, bool *ready)
{
    *ready = true;
    for (size_t i = 0; i < g->n_incoming; i++) {
        const char *flow = p->elements[g->incoming[i]].id;
        unsigned char k[8 + ENG_NAME_BYTES_MAX];
        size_t n = strlen(flow);
        MDB_val v;
        eng_put_u64(k, scope);
        memcpy(k + 8, flow, n);
        int rc = eng_get(c, ENG_T_JOIN, k, 8 + n, &v);
        if (rc < 0)
            return rc;
        if (rc == ENG_NOTFOUND || v.mv_size != 4 ||
            eng_get_u32(v.mv_data) == 0) {
            *ready = false;
            return 0;
        }
    }
    return 0;
}

/* Takes the given outgoing flows of el (completed, value pv). */
static int eng_take_flows(struct eng_ctx *c, const struct eng_model *m,
                          const Tandem__Record__ProcessInstanceRecordValue *pv,
                          const uint32_t *flows, size_t n)
{
    const struct bpmn_process *p = m->proc;
    uint64_t scope = (uint64_t)pv->flow_scope_key;
    int rc = 0;

    if (n == 0)
        return eng_path_completed(c, pv->flow_scope_key);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct bpmn_element *f = &p->elements[flows[i]];
        const struct bpmn_element *t = &p->elements[f->target];
        Tandem__Record__ProcessInstanceRecordValue fv =
            eng_child_value(pv, scope, f);
        rc = eng_pi(c, RT_EVENT, PI_FLOW_TAKEN, eng_key_next(c), &fv, NULL);
        if (rc != 0)
            break;
        if (t->type == BPMN_PARALLEL_GATEWAY && t->n_incoming > 1) {
            bool ready;
            rc = eng_join_ready(c, scope, p, t, &ready);
            if (rc != 0 || !ready)
                continue;
        }
        Tandem__Record__ProcessInstanceRecordValue tv =
            eng_child_value(pv, scope, t);
        rc = eng_pi(c, RT_COMMAND, PI_ACTIVATE, eng_key_next(c), &tv, NULL);
    }
    return rc;
}

/* COMPLETING, COMPLETED and the flows (unless already COMPLETING). */
static int
eng_complete_now(struct eng_ctx *c, const struct eng_model *m, uint64_t key,
                 const Tandem__Record__ProcessInstanceRecordValue *pv,
                 bool completing, const uint32_t *flows, size_t n)
{
    int rc = 0;
    if (!completing)
        rc = eng_pi(c, RT_EVENT, PI_COMPLETING, key, pv, NULL);
    if (rc == 0)
        rc = eng_pi(c, RT_EVENT, PI_COMPLETED, key, pv, NULL);
    if (rc == 0)
        rc = eng_take_flows(c, m, pv, flows, n);
    return rc;
}

/* Chooses the flow of an exclusive gateway: 0 with *flow set, 1 when an
 * incident was raised, < 0 on error. */
static int
eng_exclusive_choose(struct eng_ctx *c, const struct eng_model *m, uint64_t key,
                     const Tandem__Record__ProcessInstanceRecordValue *pv,
                     const struct bpmn_element *g, uint32_t *flow)
{
    char msg[ENG_INC_MSG_BYTES];
    json_t *vars = NULL;
    int rc;

    if (g->n_outgoing == 1 &&
        m->proc->elements[g->outgoing[0]].condition == NULL) {
        *flow = g->outgoing[0];
        return 0;
    }
    rc = eng_vars_visible(c, key, &vars);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < g->n_outgoing; i++) {
        uint32_t fi = g->outgoing[i];
        const struct bpmn_element *f = &m->proc->elements[fi];
        json_t *res = NULL;
        if (fi == g->default_flow)
            continue;
        if (f->condition == NULL) {
            *flow = fi;
            json_decref(vars);
            return 0;
        }
        if (eng_eval(f->condition, vars, &res, msg, sizeof msg) != 0) {
            json_decref(vars);
            rc = eng_incident_raise(c, "CONDITION_ERROR", msg, key, pv, -1);
            return rc < 0 ? rc : 1;
        }
        if (json_is_true(res)) {
            json_decref(res);
            json_decref(vars);
            *flow = fi;
            return 0;
        }
        if (!json_is_boolean(res) && !json_is_null(res)) {
            snprintf(msg, sizeof msg,
                     "Expected result of the expression '%s' to be "
                     "'BOOLEAN', but was '%s'.",
                     f->condition, eng_feel_type(res));
            json_decref(res);
            json_decref(vars);
            rc = eng_incident_raise(c, "CONDITION_ERROR", msg, key, pv, -1);
            return rc < 0 ? rc : 1;
        }
        json_decref(res);
    }
    json_decref(vars);
    if (g->default_flow != BPMN_NONE) {
        *flow = g->default_flow;
        return 0;
    }
    rc = eng_incident_raise(c, "CONDITION_ERROR",
                            "Expected at least one condition to evaluate to "
                            "true, or to have a default flow",
                            key, pv, -1);
    return rc < 0 ? rc : 1;
}

/* Input mappings, job expressions, ACTIVATED and JOB CREATED. */
static int
eng_task_activate(struct eng_ctx *c, uint64_t key,
                  const Tandem__Record__ProcessInstanceRecordValue *pv,
                  const struct bpmn_element *el)
{
    char msg[ENG_INC_MSG_BYTES];
    json_t *vars = NULL, *doc = NULL, *res = NULL;
    char *type_owned = NULL, *headers = NULL;
    const char *type = el->job_type.text;
    int32_t retries = 3;
    int rc;

    rc = eng_vars_visible(c, key, &vars);
    if (rc != 0)
        return rc;
    if (el->n_inputs > 0) {
        doc = json_object();
        if (doc == NULL) {
            rc = c->fail = ENGINE_E_NOMEM;
            goto out;
        }
        for (size_t i = 0; i < el->n_inputs; i++) {
            if (eng_eval(el->inputs[i].source, vars, &res, msg, sizeof msg) !=
                0) {
                rc =
                    eng_incident_raise(c, "IO_MAPPING_ERROR", msg, key, pv, -1);
                goto out;
            }
            int s = eng_set_path(doc, el->inputs[i].target, res, vars);
            json_decref(res);
            res = NULL;
            if (s != 0) {
                snprintf(msg, sizeof msg,
                         "Failed to set input mapping target '%s'",
                         el->inputs[i].target);
                rc =
                    eng_incident_raise(c, "IO_MAPPING_ERROR", msg, key, pv, -1);
                goto out;
            }
        }
        rc = eng_vars_merge(c, key, doc, true);
        if (rc != 0)
            goto out;
        json_decref(vars);
        vars = NULL;
        rc = eng_vars_visible(c, key, &vars);
        if (rc != 0)
            goto out;
    }
    if (el->job_type.is_expr) {
        if (eng_eval(el->job_type.text, vars, &res, msg, sizeof msg) != 0) {
            rc = eng_incident_raise(c, "EXTRACT_VALUE_ERROR", msg, key, pv, -1);
            goto out;
        }
        if (!json_is_string(res) || json_string_length(res) == 0) {
            snprintf(msg, sizeof msg,
                     "Expected result of the expression '%s' to be 'STRING', "
                     "but was '%s'.",
                     el->job_type.text, eng_feel_type(res));
            rc = eng_incident_raise(c, "EXTRACT_VALUE_ERROR", msg, key, pv, -1);
            goto out;
        }
        type_owned = strdup(json_string_value(res));
        json_decref(res);
        res = NULL;
        if (type_owned == NULL) {
            rc = c->fail = ENGINE_E_NOMEM;
            goto out;
        }
        type = type_owned;
    }
    if (el->job_retries.text != NULL && el->job_retries.is_expr) {
        if (eng_eval(el->job_retries.text, vars, &res, msg, sizeof msg) != 0) {
            rc = eng_incident_raise(c, "EXTRACT_VALUE_ERROR", msg, key, pv, -1);
            goto out;
        }
        if (!json_is_number(res)) {
            snprintf(msg, sizeof msg,
                     "Expected result of the expression '%s' to be 'NUMBER', "
                     "but was '%s'.",
                     el->job_retries.text, eng_feel_type(res));
            rc = eng_incident_raise(c, "EXTRACT_VALUE_ERROR", msg, key, pv, -1);
            goto out;
        }
        retries = (int32_t)json_number_value(res);
    } else if (el->job_retries.text != NULL) {
        char *end = NULL;
        long r = strtol(el->job_retries.text, &end, 10);
        if (end != NULL && *end == 0 && r >= 0 && r <= INT32_MAX)
            retries = (int32_t)r;
    }
    if (type == NULL || type[0] == 0) {
        rc = eng_incident_raise(c, "EXTRACT_VALUE_ERROR",
                                "Expected a job type, but it is empty", key, pv,
                                -1);
        goto out;
    }
    {
        json_t *h = json_object();
        for (size_t i = 0; h != NULL && i < el->n_headers; i++)
            json_object_set_new(
                h, el->headers[i].key,
                json_string(el->headers[i].value ? el->headers[i].value : ""));
        headers = h != NULL ? eng_json_dump(h) : NULL;
        json_decref(h);
        if (headers == NULL) {
            rc = c->fail = ENGINE_E_NOMEM;
            goto out;
        }
    }
    rc = eng_pi(c, RT_EVENT, PI_ACTIVATED, key, pv, NULL);
    if (rc != 0)
        goto out;
    {
        Tandem__Record__JobRecordValue j =
            TANDEM__RECORD__JOB_RECORD_VALUE__INIT;
        j.type = (char *)type;
        j.retries = retries;
        j.recurring_time = -1;
        j.deadline = -1;
        j.custom_headers = headers;
        j.variables = (char *)"{}";
        j.bpmn_process_id = pv->bpmn_process_id;
        j.process_definition_key = pv->process_definition_key;
        j.process_definition_version = pv->version;
        j.process_instance_key = pv->process_instance_key;
        j.element_id = pv->element_id;
        j.element_instance_key = (int64_t)key;
        j.tenant_id = pv->tenant_id;
        rc = eng_emit(c, RT_EVENT, VT_JOB, JOB_CREATED, eng_key_next(c),
                      (const ProtobufCMessage *)&j, NULL);
    }
out:
    json_decref(res);
    json_decref(doc);
    json_decref(vars);
    free(type_owned);
    free(headers);
    return rc < 0 ? rc : 0;
}

/* Output mappings (or the job's variables): 0 done, 1 incident, < 0. */
static int
eng_task_outputs(struct eng_ctx *c, uint64_t key,
                 const Tandem__Record__ProcessInstanceRecordValue *pv,
                 const struct bpmn_element *el)
{
    char msg[ENG_INC_MSG_BYTES];
    json_t *tmp = NULL, *vars = NULL, *doc = NULL, *res = NULL;
    unsigned char k[8];
    MDB_val v;
    int rc;

    eng_key8(k, key);
    rc = eng_get(c, ENG_T_TMPVAR, k, 8, &v);
    if (rc < 0)
        return rc;
    if (rc == 0)
        tmp = json_loadb(v.mv_data, v.mv_size, 0, NULL);
    if (tmp == NULL)
        tmp = json_object();
    if (tmp == NULL)
        return c->fail = ENGINE_E_NOMEM;
    rc = 0;
    if (el->n_outputs == 0) {
        if (json_object_size(tmp) > 0)
            rc = eng_vars_merge(c, key, tmp, false);
        json_decref(tmp);
        return rc;
    }
    rc = eng_vars_visible(c, key, &vars);
    if (rc != 0)
        goto out;
    json_object_update(vars, tmp);
    doc = json_object();
    if (doc == NULL) {
        rc = c->fail = ENGINE_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < el->n_outputs; i++) {
        if (eng_eval(el->outputs[i].source, vars, &res, msg, sizeof msg) != 0) {
            rc = eng_incident_raise(c, "IO_MAPPING_ERROR", msg, key, pv, -1);
            rc = rc < 0 ? rc : 1;
            goto out;
        }
        int s = eng_set_path(doc, el->outputs[i].target, res, vars);
        json_decref(res);
        res = NULL;
        if (s != 0) {
            snprintf(msg, sizeof msg,
                     "Failed to set output mapping target '%s'",
                     el->outputs[i].target);
            rc = eng_incident_raise(c, "IO_MAPPING_ERROR", msg, key, pv, -1);
            rc = rc < 0 ? rc : 1;
            goto out;
        }
    }
    if (pv->flow_scope_key > 0)
        rc = eng_vars_merge(c, (uint64_t)pv->flow_scope_key, doc, false);
out:
    json_decref(res);
    json_decref(doc);
    json_decref(vars);
    json_decref(tmp);
    return rc;
}

/* ------------------------------------------------------------------------
 * Element processors
 * --------------------------------------------------------------------- */

static Tandem__Record__ProcessInstanceRecordValue *
eng_pi_cmd_value(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    return tandem__record__process_instance_record_value__unpack(
        NULL, cmd->value.len, cmd->value.data);
}

/* Looks up the model and element of pv; rejects (returning 1) if absent. */
static int
eng_model_element(struct eng_ctx *c,
                  const Tandem__Record__ProcessInstanceRecordValue *pv,
                  const struct eng_model **m, const struct bpmn_element **el)
{
    char err[ENG_ERR_BYTES];
    *m =
        eng_model_get(c, (uint64_t)pv->process_definition_key, err, sizeof err);
    if (*m == NULL) {
        int rc = eng_reject(c, REJ_PROCESSING_ERROR, "%s", err);
        return rc < 0 ? rc : 1;
    }
    if (pv->flow_scope_key <= 0) {
        /* The process itself is not among the model's elements. */
        static const struct bpmn_element process_element = {
            .type = BPMN_PROCESS,
            .id = NULL,
            .source = BPMN_NONE,
            .target = BPMN_NONE,
            .default_flow = BPMN_NONE,
            .attached_to = BPMN_NONE,
        };
        *el = &process_element;
        return 0;
    }
    uint32_t idx = bpmn_element_find((*m)->proc, pv->element_id);
    if (idx == BPMN_NONE) {
        int rc = eng_reject(c, REJ_PROCESSING_ERROR,
                            "Expected element '%s' in process '%s', but it "
                            "does not exist",
                            pv->element_id, pv->bpmn_process_id);
        return rc < 0 ? rc : 1;
    }
    *el = &(*m)->proc->elements[idx];
    return 0;
}

int eng_proc_pi_activate(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    Tandem__Record__ProcessInstanceRecordValue *pv = eng_pi_cmd_value(c);
    const struct eng_model *m;
    const struct bpmn_element *el;
    struct eng_elem_hdr h;
    uint64_t key = cmd->key;
    int rc;

    if (pv == NULL)
        return eng_reject(c, REJ_INVALID_ARGUMENT,
                          "Expected a process instance record, but the "
                          "value does not decode");
    rc = eng_model_element(c, pv, &m, &el);
    if (rc != 0)
        goto out;
    rc = eng_elem_get(c, key, &h, NULL);
    if (rc < 0)
        goto out;
    if (rc == 0 && h.state != PI_ACTIVATING) {
        rc = eng_reject(c, REJ_INVALID_STATE,
                        "Expected to activate element '%s' with key '%" PRIu64
                        "', but it is already active",
                        pv->element_id, key);
        goto out;
    }
    if (rc == ENG_NOTFOUND) {
        rc = eng_pi(c, RT_EVENT, PI_ACTIVATING, key, pv, NULL);
        if (rc != 0)
            goto out;
    }
    switch (el->type) {
    case BPMN_PROCESS: {
        rc = eng_pi(c, RT_EVENT, PI_ACTIVATED, key, pv, NULL);
        if (rc != 0)
            break;
        Tandem__Record__ProcessInstanceRecordValue sv =
            eng_child_value(pv, key, &m->proc->elements[m->proc->start]);
        rc = eng_pi(c, RT_COMMAND, PI_ACTIVATE, eng_key_next(c), &sv, NULL);
        break;
    }
    case BPMN_SERVICE_TASK:
        rc = eng_task_activate(c, key, pv, el);
        break;
    case BPMN_EXCLUSIVE_GATEWAY: {
        uint32_t flow = BPMN_NONE;
        rc = eng_exclusive_choose(c, m, key, pv, el, &flow);
        if (rc != 0)
            break;
        rc = eng_pi(c, RT_EVENT, PI_ACTIVATED, key, pv, NULL);
        if (rc == 0)
            rc = eng_complete_now(c, m, key, pv, false, &flow, 1);
        break;
    }
    case BPMN_START_EVENT:
    case BPMN_END_EVENT:
    case BPMN_PARALLEL_GATEWAY:
    case BPMN_BOUNDARY_EVENT:
        rc = eng_pi(c, RT_EVENT, PI_ACTIVATED, key, pv, NULL);
        if (rc == 0)
            rc = eng_complete_now(c, m, key, pv, false, el->outgoing,
                                  el->n_outgoing);
        break;
    default:
        rc = eng_reject(c, REJ_PROCESSING_ERROR,
                        "Expected an executable element, but '%s' is a %s",
                        pv->element_id, bpmn_element_type_name(el->type));
        break;
    }
out:
    tandem__record__process_instance_record_value__free_unpacked(pv, NULL);
    return rc < 0 ? rc : 0;
}

int eng_proc_pi_complete(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    Tandem__Record__ProcessInstanceRecordValue *pv = NULL;
    const struct eng_model *m;
    const struct bpmn_element *el;
    struct eng_elem_hdr h;
    uint64_t key = cmd->key;
    int rc;

    rc = eng_elem_get(c, key, &h, &pv);
    if (rc < 0)
        return rc;
    if (rc == ENG_NOTFOUND)
        return eng_reject(c, REJ_NOT_FOUND,
                          "Expected to complete element with key '%" PRIu64
                          "', but no such element was found",
                          key);
    if (h.state != PI_ACTIVATED && h.state != PI_COMPLETING) {
        rc = eng_reject(c, REJ_INVALID_STATE,
                        "Expected to complete element with key '%" PRIu64
                        "', but it is not active",
                        key);
        goto out;
    }
    rc = eng_model_element(c, pv, &m, &el);
    if (rc != 0)
        goto out;
    bool completing = h.state == PI_COMPLETING;
    if (!completing) {
        rc = eng_pi(c, RT_EVENT, PI_COMPLETING, key, pv, NULL);
        if (rc != 0)
            goto out;
    }
    if (el->type == BPMN_SERVICE_TASK) {
        rc = eng_task_outputs(c, key, pv, el);
        if (rc != 0)
            goto out;
        rc =
            eng_complete_now(c, m, key, pv, true, el->outgoing, el->n_outgoing);
    } else if (el->type == BPMN_PROCESS) {
        unsigned char k[8];
        MDB_val av;
        char *result = NULL;
        struct eng_answer ans = {0, 0};
        eng_key8(k, key);
        rc = eng_get(c, ENG_T_AWAIT, k, 8, &av);
        if (rc < 0)
            goto out;
        if (rc == 0 && av.mv_size >= 12) {
            const unsigned char *p = av.mv_data;
            Tandem__Record__ProcessInstanceCreationRecordValue *cv =
                tandem__record__process_instance_creation_record_value__unpack(
                    NULL, av.mv_size - 12, p + 12);
            json_t *vars = NULL;
            ans.node = eng_get_u32(p);
            ans.id = eng_get_u64(p + 4);
            rc = cv != NULL ? eng_vars_local(c, key, &vars)
                            : (c->fail = ENGINE_E_CORRUPT);
            if (rc == 0 && cv->n_fetch_variables > 0) {
                json_t *sel = json_object();
                for (size_t i = 0; sel && i < cv->n_fetch_variables; i++) {
                    json_t *x = json_object_get(vars, cv->fetch_variables[i]);
                    if (x != NULL)
                        json_object_set(sel, cv->fetch_variables[i], x);
                }
                json_decref(vars);
                vars = sel;
            }
            if (rc == 0) {
                result = vars != NULL ? eng_json_dump(vars) : NULL;
                if (result == NULL)
                    rc = c->fail = ENGINE_E_NOMEM;
            }
            json_decref(vars);
            if (cv != NULL)
                tandem__record__process_instance_creation_record_value__free_unpacked(
                    cv, NULL);
            if (rc != 0)
                goto out;
        }
        rc = eng_pi(c, RT_EVENT, PI_COMPLETED, key, pv, NULL);
        if (rc == 0 && result != NULL) {
            Tandem__Record__ProcessInstanceResultRecordValue r =
                TANDEM__RECORD__PROCESS_INSTANCE_RESULT_RECORD_VALUE__INIT;
            r.bpmn_process_id = pv->bpmn_process_id;
            r.process_definition_key = pv->process_definition_key;
            r.version = pv->version;
            r.process_instance_key = (int64_t)key;
            r.variables = result;
            r.tenant_id = pv->tenant_id;
            rc = eng_emit(c, RT_EVENT, VT_PIR, PIR_COMPLETED, key,
                          (const ProtobufCMessage *)&r,
                          ans.id != 0 ? &ans : NULL);
        }
        free(result);
    } else {
        rc =
            eng_complete_now(c, m, key, pv, true, el->outgoing, el->n_outgoing);
    }
out:
    tandem__record__process_instance_record_value__free_unpacked(pv, NULL);
    return rc < 0 ? rc : 0;
}

static int
eng_finish_termination(struct eng_ctx *c, uint64_t key,
                       const Tandem__Record__ProcessInstanceRecordValue *pv);

/* TERMINATE_ELEMENT for every child, or the end of the termination. */
static int
eng_terminate_children(struct eng_ctx *c, uint64_t key,
                       const Tandem__Record__ProcessInstanceRecordValue *pv)
{
    struct eng_key_list l = {0};
    int rc = eng_list16(c, ENG_T_ELEM_CHILD, key, &l);

    if (rc == 0 && l.n == 0)
        rc = eng_finish_termination(c, key, pv);
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        Tandem__Record__ProcessInstanceRecordValue *cv = NULL;
        int g = eng_elem_get(c, l.keys[i], NULL, &cv);
        if (g == ENG_NOTFOUND)
            continue;
        if (g != 0) {
            rc = g;
            break;
        }
        rc = eng_pi(c, RT_COMMAND, PI_TERMINATE, l.keys[i], cv, NULL);
        tandem__record__process_instance_record_value__free_unpacked(cv, NULL);
    }
    free(l.keys);
    return rc;
}

static int
eng_finish_termination(struct eng_ctx *c, uint64_t key,
                       const Tandem__Record__ProcessInstanceRecordValue *pv)
{
    int rc = eng_resolve_incidents_of(c, key);

    if (rc == 0 && pv->flow_scope_key <= 0) {
        /* A client awaiting the result learns the instance ended. */
        unsigned char k[8];
        MDB_val av;
        eng_key8(k, key);
        rc = eng_get(c, ENG_T_AWAIT, k, 8, &av);
        if (rc == 0 && av.mv_size >= 12) {
            struct eng_answer ans = {
                eng_get_u32(av.mv_data),
                eng_get_u64((const unsigned char *)av.mv_data + 4)};
            char reason[256];
            snprintf(reason, sizeof reason,
                     "Expected to complete process instance with key '%" PRIu64
                     "' and return its result, but it was terminated",
                     key);
            rc = eng_emit_rejection(c, VT_PIC, PIC_CREATE, key,
                                    REJ_INVALID_STATE, reason, &ans);
        } else if (rc == ENG_NOTFOUND) {
            rc = 0;
        }
    }
    if (rc == 0)
        rc = eng_pi(c, RT_EVENT, PI_TERMINATED, key, pv, NULL);
    if (rc != 0 || pv->flow_scope_key <= 0)
        return rc;
    /* The scope finishes its own termination with its last child. */
    Tandem__Record__ProcessInstanceRecordValue *spv = NULL;
    struct eng_elem_hdr sh;
    uint64_t scope = (uint64_t)pv->flow_scope_key;
    rc = eng_elem_get(c, scope, &sh, &spv);
    if (rc != 0)
        return rc == ENG_NOTFOUND ? 0 : rc;
    if (sh.state == PI_TERMINATING && sh.children == 0)
        rc = eng_finish_termination(c, scope, spv);
    tandem__record__process_instance_record_value__free_unpacked(spv, NULL);
    return rc;
}

/* TERMINATING, the job canceled, then children or the end. */
static int eng_terminate(struct eng_ctx *c, uint64_t key,
                         const struct eng_elem_hdr *h,
                         const Tandem__Record__ProcessInstanceRecordValue *pv,
                         const struct eng_answer *ans)
{
    int rc = eng_pi(c, RT_EVENT, PI_TERMINATING, key, pv, ans);

    if (rc == 0 && h->job_key != 0) {
        Tandem__Record__JobRecordValue *j = NULL;
        uint32_t st;
        int g = eng_job_get(c, h->job_key, &st, &j);
        if (g == 0 && st != ENG_JOB_ERROR_THROWN)
            rc = eng_emit(c, RT_EVENT, VT_JOB, JOB_CANCELED, h->job_key,
                          (const ProtobufCMessage *)j, NULL);
        else if (g < 0)
            rc = g;
        if (j != NULL)
            tandem__record__job_record_value__free_unpacked(j, NULL);
    }
    if (rc == 0)
        rc = eng_terminate_children(c, key, pv);
    return rc;
}

int eng_proc_pi_terminate(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    Tandem__Record__ProcessInstanceRecordValue *pv = NULL;
    struct eng_elem_hdr h;
    int rc = eng_elem_get(c, cmd->key, &h, &pv);

    if (rc < 0)
        return rc;
    if (rc == ENG_NOTFOUND)
        return eng_reject(c, REJ_NOT_FOUND,
                          "Expected to terminate element with key '%" PRIu64
                          "', but no such element was found",
                          cmd->key);
    if (h.state == PI_TERMINATING)
        rc = 0;
    else
        rc = eng_terminate(c, cmd->key, &h, pv, NULL);
    tandem__record__process_instance_record_value__free_unpacked(pv, NULL);
    return rc;
}

int eng_proc_pi_cancel(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    struct eng_answer ans = eng_answer_of(cmd);
    Tandem__Record__ProcessInstanceRecordValue *pv = NULL;
    struct eng_elem_hdr h;
    int rc = eng_elem_get(c, cmd->key, &h, &pv);

    if (rc < 0)
        return rc;
    if (rc == ENG_NOTFOUND || pv->flow_scope_key > 0 ||
        h.state == PI_TERMINATING) {
        if (pv != NULL)
            tandem__record__process_instance_record_value__free_unpacked(pv,
                                                                         NULL);
        return eng_reject(
            c, REJ_NOT_FOUND,
            "Expected to cancel a process instance with key '%" PRIu64
            "', but no such process was found",
            cmd->key);
    }
    rc = eng_terminate(c, cmd->key, &h, pv, cmd->request_id ? &ans : NULL);
    tandem__record__process_instance_record_value__free_unpacked(pv, NULL);
    return rc;
}

/* ------------------------------------------------------------------------
 * Instance creation and variable documents
 * --------------------------------------------------------------------- */

int eng_proc_pic_create(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    struct eng_answer ans = eng_answer_of(cmd);
    Tandem__Record__ProcessInstanceCreationRecordValue *v;
    Tandem__Record__ProcessRecordValue *p = NULL;
    char err[ENG_ERR_BYTES];
    json_t *doc = NULL;
    uint64_t def_key = 0;
    uint32_t version = 0;
    int rc;

    v = tandem__record__process_instance_creation_record_value__unpack(
        NULL, cmd->value.len, cmd->value.data);
    if (v == NULL)
        return eng_reject(c, REJ_INVALID_ARGUMENT,
                          "Expected a process instance creation record, but "
                          "the value does not decode");
    if (v->bpmn_process_id[0] != 0) {
        if (v->version > 0) {
            rc = eng_proc_by_version(c, v->bpmn_process_id,
                                     (uint32_t)v->version, &def_key);
            if (rc == ENG_NOTFOUND) {
                rc = eng_reject(c, REJ_NOT_FOUND,
                                "Expected to find process definition with "
                                "process ID '%s' and version '%d', but none "
                                "found",
                                v->bpmn_process_id, v->version);
                goto out;
            }
        } else {
            rc = eng_proc_latest(c, v->bpmn_process_id, &version, &def_key);
            if (rc == ENG_NOTFOUND) {
                rc = eng_reject(c, REJ_NOT_FOUND,
                                "Expected to find process definition with "
                                "process ID '%s', but none found",
                                v->bpmn_process_id);
                goto out;
            }
        }
        if (rc < 0)
            goto out;
    } else if (v->process_definition_key > 0) {
        def_key = (uint64_t)v->process_definition_key;
    } else {
        rc = eng_reject(c, REJ_INVALID_ARGUMENT,
                        "Expected at least a bpmnProcessId or a key greater "
                        "than -1, but none given");
        goto out;
    }
    rc = eng_proc_get(c, def_key, &p);
    if (rc == ENG_NOTFOUND) {
        rc = eng_reject(c, REJ_NOT_FOUND,
                        "Expected to find process definition with key '%" PRIu64
                        "', but none found",
                        def_key);
        goto out;
    }
    if (rc < 0)
        goto out;
    if (eng_json_object_check("variables", v->variables, err, sizeof err)) {
        rc = eng_reject(c, REJ_INVALID_ARGUMENT, "%s", err);
        goto out;
    }
    const struct eng_model *m = eng_model_get(c, def_key, err, sizeof err);
    if (m == NULL) {
        rc = eng_reject(c, REJ_PROCESSING_ERROR, "%s", err);
        goto out;
    }
    uint64_t pi_key = eng_key_next(c);
    const char *tenant = p->tenant_id[0] ? p->tenant_id : ENGINE_DEFAULT_TENANT;
    Tandem__Record__ProcessInstanceRecordValue pv =
        TANDEM__RECORD__PROCESS_INSTANCE_RECORD_VALUE__INIT;
    pv.bpmn_process_id = p->bpmn_process_id;
    pv.version = p->version;
    pv.process_definition_key = (int64_t)def_key;
    pv.process_instance_key = (int64_t)pi_key;
    pv.element_id = p->bpmn_process_id;
    pv.flow_scope_key = -1;
    pv.bpmn_element_type = (char *)bpmn_element_type_name(BPMN_PROCESS);
    pv.parent_process_instance_key = -1;
    pv.parent_element_instance_key = -1;
    pv.bpmn_event_type = (char *)"UNSPECIFIED";
    pv.tenant_id = (char *)tenant;
    if (v->variables[0] != 0) {
        doc = json_loads(v->variables, 0, NULL);
        const char *name;
        json_t *val;
        json_object_foreach(doc, name, val)
        {
            rc = eng_var_write(c, pi_key, name, val, &pv);
            if (rc != 0)
                goto out;
        }
    }
    rc = eng_pi(c, RT_COMMAND, PI_ACTIVATE, pi_key, &pv, NULL);
    if (rc != 0)
        goto out;
    Tandem__Record__ProcessInstanceCreationRecordValue out = *v;
    out.bpmn_process_id = p->bpmn_process_id;
    out.version = p->version;
    out.process_definition_key = (int64_t)def_key;
    out.process_instance_key = (int64_t)pi_key;
    out.tenant_id = (char *)tenant;
    rc = eng_emit(c, RT_EVENT, VT_PIC, PIC_CREATED, pi_key,
                  (const ProtobufCMessage *)&out,
                  cmd->request_id && !v->await_result ? &ans : NULL);
out:
    json_decref(doc);
    if (p != NULL)
        tandem__record__process_record_value__free_unpacked(p, NULL);
    tandem__record__process_instance_creation_record_value__free_unpacked(v,
                                                                          NULL);
    return rc < 0 ? rc : 0;
}

int eng_proc_vardoc_update(struct eng_ctx *c)
{
    const Tandem__Record__Record *cmd = eng_cur(c);
    struct eng_answer ans = eng_answer_of(cmd);
    Tandem__Record__VariableDocumentRecordValue *v;
    char err[ENG_ERR_BYTES];
    int rc;

    v = tandem__record__variable_document_record_value__unpack(
        NULL, cmd->value.len, cmd->value.data);
    if (v == NULL)
        return eng_reject(c, REJ_INVALID_ARGUMENT,
                          "Expected a variable document record, but the "
                          "value does not decode");
    struct eng_elem_hdr h;
    rc = v->scope_key > 0 ? eng_elem_get(c, (uint64_t)v->scope_key, &h, NULL)
                          : ENG_NOTFOUND;
    if (rc == ENG_NOTFOUND) {
        rc = eng_reject(c, REJ_NOT_FOUND,
                        "Expected to update variables for element with key "
                        "'%" PRId64 "', but no such element was found",
                        v->scope_key);
        goto out;
    }
    if (rc < 0)
        goto out;
    if (eng_json_object_check("variables", v->variables, err, sizeof err)) {
        rc = eng_reject(c, REJ_INVALID_ARGUMENT, "%s", err);
        goto out;
    }
    uint64_t key = eng_key_next(c);
    bool local = strcmp(v->update_semantics, "LOCAL") == 0;
    if (v->variables[0] != 0) {
        json_t *doc = json_loads(v->variables, 0, NULL);
        if (doc != NULL)
            rc = eng_vars_merge(c, (uint64_t)v->scope_key, doc, local);
        json_decref(doc);
        if (rc != 0)
            goto out;
    }
    Tandem__Record__VariableDocumentRecordValue out = *v;
    out.update_semantics = (char *)(local ? "LOCAL" : "PROPAGATE");
    out.tenant_id =
        (char *)(v->tenant_id[0] ? v->tenant_id : ENGINE_DEFAULT_TENANT);
    if (v->variables[0] == 0)
        out.variables = (char *)"{}";
    rc =
        eng_emit(c, RT_EVENT, VT_VARDOC, VD_UPDATED, key,
                 (const ProtobufCMessage *)&out, cmd->request_id ? &ans : NULL);
out:
    tandem__record__variable_document_record_value__free_unpacked(v, NULL);
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------------------
 * Jobs and incidents meeting the flow
 * --------------------------------------------------------------------- */

int eng_bpmn_job_completed(struct eng_ctx *c,
                           const Tandem__Record__JobRecordValue *job)
{
    Tandem__Record__ProcessInstanceRecordValue *pv = NULL;
    struct eng_elem_hdr h;
    int rc;

    if (job->element_instance_key <= 0)
        return 0;
    rc = eng_elem_get(c, (uint64_t)job->element_instance_key, &h, &pv);
    if (rc != 0)
        return rc == ENG_NOTFOUND ? 0 : rc;
    if (h.state == PI_ACTIVATED)
        rc = eng_pi(c, RT_COMMAND, PI_COMPLETE,
                    (uint64_t)job->element_instance_key, pv, NULL);
    tandem__record__process_instance_record_value__free_unpacked(pv, NULL);
    return rc;
}

int eng_bpmn_error_thrown(struct eng_ctx *c, uint64_t job_key,
                          const Tandem__Record__JobRecordValue *job)
{
    Tandem__Record__ProcessInstanceRecordValue *pv = NULL;
    const struct bpmn_element *catcher = NULL;
    char err[ENG_ERR_BYTES];
    struct eng_elem_hdr h;
    uint64_t key;
    int rc;

    if (job->element_instance_key <= 0)
        return 0;
    key = (uint64_t)job->element_instance_key;
    rc = eng_elem_get(c, key, &h, &pv);
    if (rc != 0)
        return rc == ENG_NOTFOUND ? 0 : rc;
    const struct eng_model *m =
        eng_model_get(c, (uint64_t)pv->process_definition_key, err, sizeof err);
    uint32_t idx = m ? bpmn_element_find(m->proc, pv->element_id) : BPMN_NONE;
    if (idx != BPMN_NONE) {
        const struct bpmn_element *el = &m->proc->elements[idx];
        for (size_t i = 0; i < el->n_boundaries; i++) {
            const struct bpmn_element *b =
                &m->proc->elements[el->boundaries[i]];
            if (b->error_code != NULL &&
                strcmp(b->error_code, job->error_code) == 0) {
                catcher = b;
                break;
            }
            if (b->error_code == NULL && catcher == NULL)
                catcher = b;
        }
    }
    if (catcher == NULL) {
        char msg[ENG_INC_MSG_BYTES];
        snprintf(msg, sizeof msg,
                 "Expected to throw an error event with the code '%s' with "
                 "message '%s', but it was not caught. No error events are "
                 "available in the scope.",
                 job->error_code, job->error_message);
        rc = eng_incident_raise(c, "UNHANDLED_ERROR_EVENT", msg, key, pv,
                                (int64_t)job_key);
        goto out;
    }
    /* Interrupting boundary event: the task ends, the boundary takes
     * over in the same flow scope. */
    rc = eng_pi(c, RT_EVENT, PI_TERMINATING, key, pv, NULL);
    if (rc == 0)
        rc = eng_resolve_incidents_of(c, key);
    if (rc == 0)
        rc = eng_pi(c, RT_EVENT, PI_TERMINATED, key, pv, NULL);
    if (rc == 0 && job->variables[0] != 0 && pv->flow_scope_key > 0) {
        json_t *doc = json_loads(job->variables, 0, NULL);
        if (doc != NULL && json_object_size(doc) > 0)
            rc = eng_vars_merge(c, (uint64_t)pv->flow_scope_key, doc, false);
        json_decref(doc);
    }
    if (rc == 0) {
        Tandem__Record__ProcessInstanceRecordValue bv =
            eng_child_value(pv, (uint64_t)pv->flow_scope_key, catcher);
        rc = eng_pi(c, RT_COMMAND, PI_ACTIVATE, eng_key_next(c), &bv, NULL);
    }
out:
    tandem__record__process_instance_record_value__free_unpacked(pv, NULL);
    return rc;
}

int eng_bpmn_retry_element(struct eng_ctx *c, uint64_t elem_key)
{
    Tandem__Record__ProcessInstanceRecordValue *pv = NULL;
    struct eng_elem_hdr h;
    int rc = eng_elem_get(c, elem_key, &h, &pv);

    if (rc != 0)
        return rc == ENG_NOTFOUND ? 0 : rc;
    if (h.state == PI_ACTIVATING)
        rc = eng_pi(c, RT_COMMAND, PI_ACTIVATE, elem_key, pv, NULL);
    else if (h.state == PI_COMPLETING)
        rc = eng_pi(c, RT_COMMAND, PI_COMPLETE, elem_key, pv, NULL);
    tandem__record__process_instance_record_value__free_unpacked(pv, NULL);
    return rc;
}
