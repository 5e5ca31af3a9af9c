/* bpmn.c: BPMN 2.0 XML -> struct bpmn_definitions (the contract is bpmn.h).
 *
 * Data flow:
 *
 *   1. bpmn_parse() bounds the size and hands the bytes to libxml2 through
 *      a private parser context (xml_read): no network, no entity
 *      substitution, no DTD loading. SAX hooks on that context stop the
 *      parse at the first DOCTYPE, before any entity can be declared (let
 *      alone expanded), and when the document has too many or too deeply
 *      nested elements. libxml2's errors go to a structured handler that
 *      keeps the first one in struct parse; nothing is printed.
 *   2. The tree is walked: <definitions> -> its <error> elements (targets
 *      of errorRef), then each executable <process>, whose flow elements
 *      become struct bpmn_element in document order (process_parse). The
 *      references between elements are kept as text in a parallel array of
 *      struct refs.
 *   3. process_resolve() sorts the ids into an index (duplicates refused),
 *      turns references into element indices and fills the incoming,
 *      outgoing and boundaries arrays.
 *   4. process_validate() checks the rules listed in bpmn.h.
 *
 * The first problem found wins: it is formatted into err (prefixed with
 * "'<resource_name>': " when a name is given) and everything built so far
 * is freed. Every string of the model is a malloc'd copy owned by the
 * model; nothing points into libxml2's tree once bpmn_parse() returns.
 *
 * Thread safety: bpmn_parse() may run on several threads at once. libxml2
 * is initialised once (pthread_once); each call owns its parser context;
 * the only libxml2 global it touches is the structured error handler,
 * which libxml2 keeps per thread, and it is restored before returning.
 */
#define _POSIX_C_SOURCE 200809L
#include "broker/engine/bpmn.h"

#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/SAX2.h>
#include <libxml/globals.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#ifndef LIBXML_THREAD_ENABLED
#error "bpmn.c needs a libxml2 built with threads (per-thread error handlers)"
#endif

#if LIBXML_VERSION >= 21200
#define XML_ERROR_CONST const
#else
#define XML_ERROR_CONST
#endif

/* ------------------------------------------------------------------------
 * Limits and names
 * --------------------------------------------------------------------- */

#define NS_BPMN "http://www.omg.org/spec/BPMN/20100524/MODEL"
#define NS_ZEEBE "http://camunda.org/schema/zeebe/1.0"

/* XML elements in a whole document (flow elements plus their children,
 * diagram shapes, waypoints...): a full-size process with its diagram
 * stays well below this. */
#define XML_ELEMENTS_MAX (20u * BPMN_ELEMENTS_MAX)
#define XML_DEPTH_MAX 64    /* nesting of XML elements */
#define XML_MSG_BYTES 256   /* first libxml2 message kept */
#define PROCESSES_MAX 256   /* executable processes per resource */
#define QUOTE_BYTES_MAX 64  /* user text quoted in an error message */
#define RETRIES_DEFAULT "3" /* Zeebe's default job retries */

_Static_assert(BPMN_RESOURCE_BYTES_MAX <= INT_MAX,
               "libxml2 takes the size as an int");
_Static_assert(BPMN_ELEMENTS_MAX < BPMN_NONE, "indices fit below BPMN_NONE");
_Static_assert(XML_ELEMENTS_MAX >= BPMN_ELEMENTS_MAX,
               "every flow element is an XML element");

/* A top-level <error id=... errorCode=...>. */
struct error_def {
    char *id;
    char *code; /* NULL when the element has no errorCode */
    int line;
};

/* State of one bpmn_parse() call. */
struct parse {
    const char *resource; /* for messages; may be NULL */
    char *err;            /* caller's buffer, may be NULL */
    size_t errlen;
    int rv; /* 0 until the first failure, then its bpmn_errno */
    /* libxml2 side, filled by the hooks below. */
    char xml_msg[XML_MSG_BYTES]; /* first error libxml2 reported */
    int xml_line;
    bool xml_nomem;
    int dtd_line;           /* > 0: a DOCTYPE was seen on that line */
    int limit_line;         /* > 0: an element limit stopped the parse */
    const char *limit_what; /* which limit */
    size_t xml_elements;    /* XML elements seen so far */
    /* The <error> elements of <definitions>. */
    struct error_def *errors;
    size_t n_errors;
};

/* References of one element, still as text (NULL when absent). */
struct refs {
    char *source;   /* sequence flow: sourceRef */
    char *target;   /* sequence flow: targetRef */
    char *dflt;     /* exclusive gateway: default */
    char *attached; /* boundary event: attachedToRef */
};

/* One entry of the sorted id index of a process. */
struct id_entry {
    const char *id;
    uint32_t index;
};

/* A process while it is being built. */
struct build {
    struct bpmn_process *p;
    struct refs *refs;      /* parallel to p->elements */
    size_t cap;             /* allocated slots of both arrays */
    struct id_entry *index; /* sorted by id, p->n_elements entries */
};

/* ------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------- */

/* Records the first failure: rv and a message (printf-style). Later calls
 * are ignored, so callers may simply propagate. Returns ps->rv. */
static int parse_fail(struct parse *ps, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int parse_fail(struct parse *ps, int rv, const char *fmt, ...)
{
    va_list ap;
    size_t off = 0;

    assert(rv < 0);
    if (ps->rv != 0) {
        return ps->rv;
    }
    ps->rv = rv;
    if (ps->err == NULL || ps->errlen == 0) {
        return rv;
    }
    ps->err[0] = '\0';
    if (ps->resource != NULL && ps->resource[0] != '\0') {
        int n = snprintf(ps->err, ps->errlen, "'%s': ", ps->resource);
        if (n < 0) {
            n = 0;
        }
        off = (size_t)n < ps->errlen ? (size_t)n : ps->errlen - 1;
    }
    va_start(ap, fmt);
    vsnprintf(ps->err + off, ps->errlen - off, fmt, ap);
    va_end(ap);
    return rv;
}

static int parse_nomem(struct parse *ps)
{
    return parse_fail(ps, BPMN_E_NOMEM, "out of memory");
}

/* Copies at most QUOTE_BYTES_MAX bytes of s into buf for a message,
 * replacing control characters, and marks a cut with "...". */
static const char *quote(const char *s, char *buf, size_t buflen)
{
    size_t i = 0, o = 0;

    assert(buflen >= QUOTE_BYTES_MAX + 4);
    if (s == NULL) {
        return "";
    }
    for (; s[i] != '\0' && o < QUOTE_BYTES_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    if (s[i] != '\0') {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    assert(o < buflen);
    return buf;
}

/* ------------------------------------------------------------------------
 * libxml2: hardened reading
 * --------------------------------------------------------------------- */

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void)
{
    xmlInitParser();
}

/* Structured error handler of both the parser context and (for errors
 * libxml2 raises without a context, e.g. in encoding conversion) the
 * calling thread. data is the parser context; its _private is ours. */
static void xml_error_cb(void *data, XML_ERROR_CONST xmlError *e)
{
    xmlParserCtxtPtr ctxt = data;
    struct parse *ps;
    size_t n;

    if (ctxt == NULL || ctxt->_private == NULL || e == NULL) {
        return;
    }
    ps = ctxt->_private;
    if (e->code == XML_ERR_NO_MEMORY) {
        ps->xml_nomem = true;
    }
    if (e->level == XML_ERR_WARNING || e->code == XML_ERR_USER_STOP) {
        return; /* warnings are harmless; stops are ours, explained */
    }
    if (ps->xml_msg[0] != '\0') {
        return; /* the first error is the one that explains */
    }
    snprintf(ps->xml_msg, sizeof(ps->xml_msg), "%s",
             e->message != NULL ? e->message : "unknown libxml2 error");
    for (char *c = ps->xml_msg; *c != '\0'; c++) {
        if (*c == '\n' || *c == '\r' || *c == '\t') {
            *c = ' '; /* libxml2 puts details on a second line */
        }
    }
    n = strlen(ps->xml_msg);
    while (n > 0 && (ps->xml_msg[n - 1] == '\n' || ps->xml_msg[n - 1] == ' ' ||
                     ps->xml_msg[n - 1] == '\r')) {
        ps->xml_msg[--n] = '\0';
    }
    ps->xml_line = e->line > 0 ? e->line : 0;
    if (ps->xml_line == 0 && ctxt->input != NULL) {
        ps->xml_line = ctxt->input->line;
    }
}

/* SAX hook: a DOCTYPE starts. Stops the parse before its internal subset
 * (where entities would be declared) is read. */
static void xml_internal_subset(void *ctx, const xmlChar *name,
                                const xmlChar *external_id,
                                const xmlChar *system_id)
{
    xmlParserCtxtPtr ctxt = ctx;
    struct parse *ps = ctxt->_private;

    (void)name;
    (void)external_id;
    (void)system_id;
    assert(ps != NULL);
    if (ps->dtd_line == 0) {
        ps->dtd_line = ctxt->input != NULL && ctxt->input->line > 0
                           ? ctxt->input->line
                           : 1;
    }
    xmlStopParser(ctxt);
}

/* SAX hook: an element starts. Counts elements and bounds the nesting,
 * then lets libxml2 build the node. */
static void xml_start_element(void *ctx, const xmlChar *localname,
                              const xmlChar *prefix, const xmlChar *uri,
                              int nb_namespaces, const xmlChar **namespaces,
                              int nb_attributes, int nb_defaulted,
                              const xmlChar **attributes)
{
    xmlParserCtxtPtr ctxt = ctx;
    struct parse *ps = ctxt->_private;

    assert(ps != NULL);
    ps->xml_elements++;
    if (ps->xml_elements > XML_ELEMENTS_MAX || ctxt->nameNr >= XML_DEPTH_MAX) {
        if (ps->limit_line == 0) {
            ps->limit_line = ctxt->input != NULL && ctxt->input->line > 0
                                 ? ctxt->input->line
                                 : 1;
            ps->limit_what = ps->xml_elements > XML_ELEMENTS_MAX
                                 ? "more XML elements than allowed"
                                 : "XML elements nested too deeply";
        }
        xmlStopParser(ctxt);
        return;
    }
    xmlSAX2StartElementNs(ctx, localname, prefix, uri, nb_namespaces,
                          namespaces, nb_attributes, nb_defaulted, attributes);
}

/* Parses xml into a tree, or fails with a message. *out is the document
 * (free with xmlFreeDoc) on success. */
static int xml_read(struct parse *ps, const char *xml, size_t len,
                    xmlDocPtr *out)
{
    const int options = XML_PARSE_NONET | XML_PARSE_BIG_LINES |
                        XML_PARSE_NOERROR | XML_PARSE_NOWARNING;
    xmlStructuredErrorFunc saved_fn;
    void *saved_ctx;
    xmlParserCtxtPtr ctxt;
    xmlDocPtr doc;
    bool ns_ok;

    assert(len > 0);
    assert(len <= BPMN_RESOURCE_BYTES_MAX);
    assert((options & XML_PARSE_NOENT) == 0);   /* no entity substitution */
    assert((options & XML_PARSE_DTDLOAD) == 0); /* no external DTD */
    *out = NULL;
    pthread_once(&xml_once, xml_init);
    ctxt = xmlNewParserCtxt();
    if (ctxt == NULL || ctxt->sax == NULL) {
        xmlFreeParserCtxt(ctxt);
        return parse_nomem(ps); /* UNTESTED: malloc failure */
    }
    ctxt->_private = ps;
    assert(ctxt->sax->initialized == XML_SAX2_MAGIC);
    ctxt->sax->internalSubset = xml_internal_subset;
    ctxt->sax->startElementNs = xml_start_element;
    ctxt->sax->serror = xml_error_cb;

    /* libxml2 keeps this handler per thread: install ours for this call
     * only (errors raised without a parser context land here too). */
    saved_fn = xmlStructuredError;
    saved_ctx = xmlStructuredErrorContext;
    xmlSetStructuredErrorFunc(ctxt, xml_error_cb);
    doc = xmlCtxtReadMemory(ctxt, xml, (int)len, NULL, NULL, options);
    xmlSetStructuredErrorFunc(saved_ctx, saved_fn);
    ns_ok = ctxt->nsWellFormed != 0;
    xmlFreeParserCtxt(ctxt);

    if (ps->dtd_line > 0 ||
        (doc != NULL && (doc->intSubset != NULL || doc->extSubset != NULL))) {
        xmlFreeDoc(doc);
        return parse_fail(ps, BPMN_E_INVALID,
                          "DOCTYPE at line %d: DTDs and entity declarations "
                          "are not allowed in a BPMN resource",
                          ps->dtd_line > 0 ? ps->dtd_line : 1);
    }
    if (ps->limit_line > 0) {
        xmlFreeDoc(doc);
        return parse_fail(ps, BPMN_E_LIMIT,
                          "%s at line %d (at most %u elements, nested at "
                          "most %d deep)",
                          ps->limit_what, ps->limit_line,
                          (unsigned)XML_ELEMENTS_MAX, XML_DEPTH_MAX);
    }
    if (ps->xml_nomem) {
        xmlFreeDoc(doc);
        return parse_nomem(ps); /* UNTESTED: malloc failure in libxml2 */
    }
    if (doc == NULL || !ns_ok) {
        xmlFreeDoc(doc);
        return parse_fail(ps, BPMN_E_INVALID,
                          "not well-formed XML at line %d: %s", ps->xml_line,
                          ps->xml_msg[0] != '\0' ? ps->xml_msg : "no document");
    }
    *out = doc;
    return 0;
}

/* ------------------------------------------------------------------------
 * Tree helpers
 * --------------------------------------------------------------------- */

/* Is n an element in namespace ns with local name name (any name when
 * name is NULL)? */
static bool xml_is(const xmlNode *n, const char *ns, const char *name)
{
    assert(ns != NULL);
    if (n == NULL || n->type != XML_ELEMENT_NODE || n->ns == NULL ||
        n->ns->href == NULL) {
        return false;
    }
    if (strcmp((const char *)n->ns->href, ns) != 0) {
        return false;
    }
    return name == NULL || strcmp((const char *)n->name, name) == 0;
}

static int xml_line(const xmlNode *n)
{
    long line = xmlGetLineNo(n);

    if (line < 0) {
        return 0;
    }
    return line > INT_MAX ? INT_MAX : (int)line;
}

/* The name of n for messages: "zeebe:x" for Zeebe's namespace, the local
 * name for BPMN's, prefix:name otherwise. */
static void xml_name(const xmlNode *n, char *buf, size_t buflen)
{
    const char *local = (const char *)n->name;

    if (xml_is(n, NS_ZEEBE, NULL)) {
        snprintf(buf, buflen, "zeebe:%s", local);
    } else if (n->ns != NULL && n->ns->prefix != NULL &&
               !xml_is(n, NS_BPMN, NULL)) {
        snprintf(buf, buflen, "%s:%s", (const char *)n->ns->prefix, local);
    } else {
        snprintf(buf, buflen, "%s", local);
    }
}

/* Copies libxml2 text into a malloc'd string (text may be NULL: "" is
 * returned). The caller frees the result; NULL means out of memory. */
static char *text_copy(const xmlChar *text)
{
    const char *s = text != NULL ? (const char *)text : "";
    size_t n = strlen(s);
    char *copy = malloc(n + 1);

    if (copy != NULL) {
        memcpy(copy, s, n + 1);
    }
    return copy;
}

/* Reads attribute name of n (without namespace when ns is NULL, else in
 * namespace ns) into *out: a malloc'd copy, or NULL when absent. */
static int attr_get(struct parse *ps, const xmlNode *n, const char *name,
                    const char *ns, char **out)
{
    const xmlAttr *a;

    assert(n->type == XML_ELEMENT_NODE);
    *out = NULL;
    for (a = n->properties; a != NULL; a = a->next) {
        bool ns_match;
        xmlChar *value;

        if (strcmp((const char *)a->name, name) != 0) {
            continue;
        }
        ns_match = ns == NULL ? a->ns == NULL
                              : a->ns != NULL && a->ns->href != NULL &&
                                    strcmp((const char *)a->ns->href, ns) == 0;
        if (!ns_match) {
            continue;
        }
        if (a->children == NULL) {
            *out = text_copy(NULL);
        } else if (a->children->next == NULL &&
                   a->children->type == XML_TEXT_NODE) {
            *out = text_copy(a->children->content);
        } else {
            value = xmlNodeListGetString(n->doc, a->children, 1);
            if (value == NULL) {
                return parse_nomem(ps); /* UNTESTED: malloc failure */
            }
            *out = text_copy(value);
            xmlFree(value);
        }
        return *out != NULL ? 0 : parse_nomem(ps);
    }
    return 0;
}

/* The text content of n (text and CDATA children) as a malloc'd copy. */
static int text_get(struct parse *ps, const xmlNode *n, char **out)
{
    xmlChar *content = xmlNodeGetContent(n);

    *out = text_copy(content);
    xmlFree(content);
    return *out != NULL ? 0 : parse_nomem(ps);
}

static bool text_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Removes leading and trailing XML white space from s, in place. */
static void text_trim(char *s)
{
    size_t start = 0, end = strlen(s);

    while (start < end && text_space(s[start])) {
        start++;
    }
    while (end > start && text_space(s[end - 1])) {
        end--;
    }
    memmove(s, s + start, end - start);
    s[end - start] = '\0';
}

/* ------------------------------------------------------------------------
 * Values and expressions
 * --------------------------------------------------------------------- */

/* Turns raw (owned, may be NULL) into v: "=expr" gives the trimmed expr
 * with is_expr, anything else the static text as given. */
static void value_set(struct bpmn_value *v, char *raw)
{
    assert(v->text == NULL);
    v->text = raw;
    v->is_expr = false;
    if (raw == NULL) {
        return;
    }
    {
        size_t i = 0;
        while (text_space(raw[i])) {
            i++;
        }
        if (raw[i] != '=') {
            return;
        }
        memmove(raw, raw + i + 1, strlen(raw + i + 1) + 1);
        text_trim(raw);
        v->is_expr = true;
    }
}

/* Writes the static text s as a FEEL string literal ("..." with \" \\ \n
 * \t \uXXXX escapes), so that a mapping source is always FEEL. */
static char *feel_string_literal(const char *s)
{
    size_t n = strlen(s), o = 0;
    char *lit;

    if (n > (SIZE_MAX - 3) / 6) {
        return NULL; /* UNTESTED: bounded by the resource size */
    }
    lit = malloc(n * 6 + 3);
    if (lit == NULL) {
        return NULL;
    }
    lit[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            lit[o++] = '\\';
            lit[o++] = (char)c;
        } else if (c == '\n') {
            lit[o++] = '\\';
            lit[o++] = 'n';
        } else if (c == '\t') {
            lit[o++] = '\\';
            lit[o++] = 't';
        } else if (c < 0x20) {
            o += (size_t)snprintf(lit + o, 7, "\\u%04x", c);
        } else {
            lit[o++] = (char)c;
        }
    }
    lit[o++] = '"';
    lit[o] = '\0';
    assert(o <= n * 6 + 2);
    return lit;
}

/* Is s a variable name or a dotted path of names (a.b.c)? */
static bool target_valid(const char *s)
{
    bool segment_start = true;

    if (s[0] == '\0') {
        return false;
    }
    for (const char *c = s; *c != '\0'; c++) {
        bool alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                     *c == '_' || *c == '$';
        bool digit = *c >= '0' && *c <= '9';
        if (*c == '.') {
            if (segment_start) {
                return false;
            }
            segment_start = true;
            continue;
        }
        if (!alpha && !(digit && !segment_start)) {
            return false;
        }
        segment_start = false;
    }
    return !segment_start;
}

/* Is s a decimal integer in 0..INT32_MAX? */
static bool retries_valid(const char *s)
{
    long long v = 0;

    if (s[0] == '\0') {
        return false;
    }
    for (const char *c = s; *c != '\0'; c++) {
        if (*c < '0' || *c > '9') {
            return false;
        }
        v = v * 10 + (*c - '0');
        if (v > INT32_MAX) {
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------
 * Elements
 * --------------------------------------------------------------------- */

static void element_free(struct bpmn_element *e)
{
    free(e->id);
    free(e->name);
    free(e->incoming);
    free(e->outgoing);
    free(e->condition);
    free(e->job_type.text);
    free(e->job_retries.text);
    for (size_t i = 0; i < e->n_headers; i++) {
        free(e->headers[i].key);
        free(e->headers[i].value);
    }
    free(e->headers);
    for (size_t i = 0; i < e->n_inputs; i++) {
        free(e->inputs[i].source);
        free(e->inputs[i].target);
    }
    free(e->inputs);
    for (size_t i = 0; i < e->n_outputs; i++) {
        free(e->outputs[i].source);
        free(e->outputs[i].target);
    }
    free(e->outputs);
    free(e->boundaries);
    free(e->error_code);
}

static void refs_free(struct refs *r)
{
    free(r->source);
    free(r->target);
    free(r->dflt);
    free(r->attached);
}

/* Appends an element of this type for node n to the process: id (required)
 * and name are read, every index is BPMN_NONE. Returns its index in *index.
 */
static int element_add(struct parse *ps, struct build *b,
                       enum bpmn_element_type type, const xmlNode *n,
                       uint32_t *index)
{
    struct bpmn_process *p = b->p;
    struct bpmn_element *e;
    char what[64];
    int rv;

    assert(p->n_elements <= b->cap);
    if (p->n_elements >= BPMN_ELEMENTS_MAX) {
        return parse_fail(ps, BPMN_E_LIMIT,
                          "process '%s' has more than %d elements (line %d)",
                          p->id, BPMN_ELEMENTS_MAX, xml_line(n));
    }
    if (p->n_elements == b->cap) {
        size_t cap = b->cap == 0 ? 16 : b->cap * 2;
        struct bpmn_element *elements;
        struct refs *refs;

        if (cap > BPMN_ELEMENTS_MAX) {
            cap = BPMN_ELEMENTS_MAX;
        }
        elements = realloc(p->elements, cap * sizeof(*elements));
        if (elements == NULL) {
            return parse_nomem(ps);
        }
        p->elements = elements;
        refs = realloc(b->refs, cap * sizeof(*refs));
        if (refs == NULL) {
            return parse_nomem(ps);
        }
        b->refs = refs;
        b->cap = cap;
    }
    e = &p->elements[p->n_elements];
    memset(e, 0, sizeof(*e));
    memset(&b->refs[p->n_elements], 0, sizeof(b->refs[0]));
    e->type = type;
    e->line = xml_line(n);
    e->source = BPMN_NONE;
    e->target = BPMN_NONE;
    e->default_flow = BPMN_NONE;
    e->attached_to = BPMN_NONE;
    *index = (uint32_t)p->n_elements;
    p->n_elements++;

    if ((rv = attr_get(ps, n, "id", NULL, &e->id)) != 0 ||
        (rv = attr_get(ps, n, "name", NULL, &e->name)) != 0) {
        return rv;
    }
    xml_name(n, what, sizeof(what));
    if (e->id == NULL || e->id[0] == '\0') {
        return parse_fail(ps, BPMN_E_INVALID,
                          "element '%s' without an id at line %d", what,
                          e->line);
    }
    return 0;
}

/* The message for a child element the parser does not support. */
static int unsupported_child(struct parse *ps, const xmlNode *child,
                             const xmlNode *owner, const char *owner_id)
{
    char what[64], owner_name[64], q[QUOTE_BYTES_MAX + 4];

    xml_name(child, what, sizeof(what));
    xml_name(owner, owner_name, sizeof(owner_name));
    return parse_fail(
        ps, BPMN_E_INVALID, "unsupported element '%s' in %s '%s' at line %d",
        what, owner_name, quote(owner_id, q, sizeof(q)), xml_line(child));
}

/* An extensionElements whose content carries no meaning for us: other
 * namespaces and zeebe:properties pass, other Zeebe extensions fail. */
static int extensions_check_ignorable(struct parse *ps, const xmlNode *ext,
                                      const xmlNode *owner,
                                      const char *owner_id)
{
    for (const xmlNode *c = ext->children; c != NULL; c = c->next) {
        if (xml_is(c, NS_ZEEBE, NULL) && !xml_is(c, NS_ZEEBE, "properties")) {
            return unsupported_child(ps, c, owner, owner_id);
        }
    }
    return 0;
}

/* Children every flow element may have: documentation, incoming and
 * outgoing (recomputed from the flows), extensionElements without Zeebe
 * extensions. Returns 0 for those (and for text, comments...), fails on
 * anything else. */
static int child_common(struct parse *ps, const xmlNode *c,
                        const xmlNode *owner, const char *owner_id)
{
    if (c->type != XML_ELEMENT_NODE) {
        return 0;
    }
    if (xml_is(c, NS_BPMN, "documentation") || xml_is(c, NS_BPMN, "incoming") ||
        xml_is(c, NS_BPMN, "outgoing")) {
        return 0;
    }
    if (xml_is(c, NS_BPMN, "extensionElements")) {
        return extensions_check_ignorable(ps, c, owner, owner_id);
    }
    return unsupported_child(ps, c, owner, owner_id);
}

/* Is c one of BPMN's event definitions (xxxEventDefinition)? */
static bool event_definition_is(const xmlNode *c)
{
    static const char suffix[] = "EventDefinition";
    size_t n;

    if (!xml_is(c, NS_BPMN, NULL)) {
        return false;
    }
    n = strlen((const char *)c->name);
    return n >= sizeof(suffix) - 1 &&
           strcmp((const char *)c->name + n - (sizeof(suffix) - 1), suffix) ==
               0;
}

/* startEvent and endEvent: none events only. */
static int event_parse(struct parse *ps, struct build *b, const xmlNode *n,
                       enum bpmn_element_type type)
{
    const char *id;
    uint32_t i;
    int rv = element_add(ps, b, type, n, &i);

    if (rv != 0) {
        return rv;
    }
    id = b->p->elements[i].id;
    for (const xmlNode *c = n->children; c != NULL; c = c->next) {
        if (event_definition_is(c)) {
            return parse_fail(
                ps, BPMN_E_INVALID,
                "unsupported event definition '%s' on %s '%s' at line %d "
                "(only none start and end events are supported)",
                (const char *)c->name, (const char *)n->name, id, xml_line(c));
        }
        if ((rv = child_common(ps, c, n, id)) != 0) {
            return rv;
        }
    }
    return 0;
}

/* zeebe:taskDefinition: type (or legacy zeebe:type) and retries. */
static int task_definition_parse(struct parse *ps, struct bpmn_element *e,
                                 const xmlNode *n)
{
    char *type = NULL, *retries = NULL, q[QUOTE_BYTES_MAX + 4];
    int rv;

    if (e->job_type.text != NULL) {
        return parse_fail(ps, BPMN_E_INVALID,
                          "service task '%s' has more than one "
                          "zeebe:taskDefinition (line %d)",
                          e->id, xml_line(n));
    }
    if ((rv = attr_get(ps, n, "type", NULL, &type)) != 0) {
        return rv;
    }
    if (type == NULL && (rv = attr_get(ps, n, "type", NS_ZEEBE, &type)) != 0) {
        return rv;
    }
    if ((rv = attr_get(ps, n, "retries", NULL, &retries)) != 0) {
        free(type);
        return rv;
    }
    if (retries == NULL &&
        (rv = attr_get(ps, n, "retries", NS_ZEEBE, &retries)) != 0) {
        free(type);
        return rv;
    }
    if (type == NULL) {
        free(retries);
        return parse_fail(ps, BPMN_E_INVALID,
                          "service task '%s' has no job type "
                          "(zeebe:taskDefinition type) at line %d",
                          e->id, xml_line(n));
    }
    value_set(&e->job_type, type);
    if (e->job_type.text[0] == '\0') {
        free(retries);
        return parse_fail(ps, BPMN_E_INVALID,
                          "service task '%s' has an empty job type "
                          "(zeebe:taskDefinition type) at line %d",
                          e->id, xml_line(n));
    }
    if (retries != NULL) {
        free(e->job_retries.text);
        e->job_retries.text = NULL;
        value_set(&e->job_retries, retries);
        if (e->job_retries.is_expr ? e->job_retries.text[0] == '\0'
                                   : !retries_valid(e->job_retries.text)) {
            return parse_fail(ps, BPMN_E_INVALID,
                              "invalid retries '%s' of service task '%s' at "
                              "line %d (a number 0..2147483647 or "
                              "=expression)",
                              quote(retries, q, sizeof(q)), e->id, xml_line(n));
        }
    }
    return 0;
}

/* zeebe:taskHeaders: zeebe:header key/value pairs, in order. */
static int task_headers_parse(struct parse *ps, struct bpmn_element *e,
                              const xmlNode *n)
{
    for (const xmlNode *c = n->children; c != NULL; c = c->next) {
        struct bpmn_header *h;
        int rv;

        if (c->type != XML_ELEMENT_NODE) {
            continue;
        }
        if (!xml_is(c, NS_ZEEBE, "header")) {
            return unsupported_child(ps, c, n, e->id);
        }
        h = realloc(e->headers, (e->n_headers + 1) * sizeof(*h));
        if (h == NULL) {
            return parse_nomem(ps);
        }
        e->headers = h;
        h = &e->headers[e->n_headers++];
        memset(h, 0, sizeof(*h));
        if ((rv = attr_get(ps, c, "key", NULL, &h->key)) != 0 ||
            (rv = attr_get(ps, c, "value", NULL, &h->value)) != 0) {
            return rv;
        }
        if (h->key == NULL || h->key[0] == '\0') {
            return parse_fail(ps, BPMN_E_INVALID,
                              "zeebe:header without a key in service task "
                              "'%s' at line %d",
                              e->id, xml_line(c));
        }
        if (h->value == NULL) {
            return parse_fail(ps, BPMN_E_INVALID,
                              "zeebe:header '%s' without a value in service "
                              "task '%s' at line %d",
                              h->key, e->id, xml_line(c));
        }
    }
    return 0;
}

/* One zeebe:input or zeebe:output: source (FEEL; a static text becomes a
 * string literal; absent means null) and target (a variable path). */
static int mapping_parse(struct parse *ps, struct bpmn_element *e,
                         const xmlNode *c, struct bpmn_mapping **list,
                         size_t *count)
{
    struct bpmn_mapping *m;
    struct bpmn_value source = {NULL, false};
    char *raw = NULL, q[QUOTE_BYTES_MAX + 4];
    int rv;

    m = realloc(*list, (*count + 1) * sizeof(*m));
    if (m == NULL) {
        return parse_nomem(ps);
    }
    *list = m;
    m = &m[(*count)++];
    memset(m, 0, sizeof(*m));
    if ((rv = attr_get(ps, c, "target", NULL, &m->target)) != 0 ||
        (rv = attr_get(ps, c, "source", NULL, &raw)) != 0) {
        return rv;
    }
    if (m->target == NULL || !target_valid(m->target)) {
        free(raw);
        return parse_fail(ps, BPMN_E_INVALID,
                          "invalid target '%s' of zeebe:%s in service task "
                          "'%s' at line %d (a variable name or a.b.c path)",
                          quote(m->target, q, sizeof(q)), (const char *)c->name,
                          e->id, xml_line(c));
    }
    value_set(&source, raw);
    if (source.text == NULL || source.text[0] == '\0') {
        free(source.text);
        m->source = text_copy(BAD_CAST "null");
    } else if (source.is_expr) {
        m->source = source.text;
    } else {
        m->source = feel_string_literal(source.text);
        free(source.text);
    }
    return m->source != NULL ? 0 : parse_nomem(ps);
}

/* zeebe:ioMapping: zeebe:input and zeebe:output, in order. */
static int io_mapping_parse(struct parse *ps, struct bpmn_element *e,
                            const xmlNode *n)
{
    for (const xmlNode *c = n->children; c != NULL; c = c->next) {
        int rv;

        if (c->type != XML_ELEMENT_NODE) {
            continue;
        }
        if (xml_is(c, NS_ZEEBE, "input")) {
            rv = mapping_parse(ps, e, c, &e->inputs, &e->n_inputs);
        } else if (xml_is(c, NS_ZEEBE, "output")) {
            rv = mapping_parse(ps, e, c, &e->outputs, &e->n_outputs);
        } else {
            rv = unsupported_child(ps, c, n, e->id);
        }
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

/* serviceTask with its Zeebe extensions. */
static int service_task_parse(struct parse *ps, struct build *b,
                              const xmlNode *n)
{
    struct bpmn_element *e;
    bool io_seen = false, headers_seen = false;
    uint32_t i;
    int rv = element_add(ps, b, BPMN_SERVICE_TASK, n, &i);

    if (rv != 0) {
        return rv;
    }
    e = &b->p->elements[i];
    e->job_retries.text = text_copy(BAD_CAST RETRIES_DEFAULT);
    if (e->job_retries.text == NULL) {
        return parse_nomem(ps);
    }
    for (const xmlNode *c = n->children; c != NULL; c = c->next) {
        if (!xml_is(c, NS_BPMN, "extensionElements")) {
            if ((rv = child_common(ps, c, n, e->id)) != 0) {
                return rv;
            }
            continue;
        }
        for (const xmlNode *x = c->children; x != NULL; x = x->next) {
            if (!xml_is(x, NS_ZEEBE, NULL)) {
                continue; /* text, comments, other vendors' extensions */
            }
            if (xml_is(x, NS_ZEEBE, "taskDefinition")) {
                rv = task_definition_parse(ps, e, x);
            } else if (xml_is(x, NS_ZEEBE, "taskHeaders")) {
                rv = headers_seen
                         ? parse_fail(ps, BPMN_E_INVALID,
                                      "service task '%s' has more than one "
                                      "zeebe:taskHeaders (line %d)",
                                      e->id, xml_line(x))
                         : task_headers_parse(ps, e, x);
                headers_seen = true;
            } else if (xml_is(x, NS_ZEEBE, "ioMapping")) {
                rv = io_seen ? parse_fail(ps, BPMN_E_INVALID,
                                          "service task '%s' has more than "
                                          "one zeebe:ioMapping (line %d)",
                                          e->id, xml_line(x))
                             : io_mapping_parse(ps, e, x);
                io_seen = true;
            } else if (xml_is(x, NS_ZEEBE, "properties")) {
                rv = 0;
            } else {
                rv = unsupported_child(ps, x, n, e->id);
            }
            if (rv != 0) {
                return rv;
            }
        }
    }
    if (e->job_type.text == NULL) {
        return parse_fail(ps, BPMN_E_INVALID,
                          "service task '%s' has no job type "
                          "(zeebe:taskDefinition type) at line %d",
                          e->id, e->line);
    }
    return 0;
}

/* exclusiveGateway (default flow kept as text) and parallelGateway. */
static int gateway_parse(struct parse *ps, struct build *b, const xmlNode *n,
                         enum bpmn_element_type type)
{
    uint32_t i;
    int rv = element_add(ps, b, type, n, &i);

    if (rv != 0) {
        return rv;
    }
    if (type == BPMN_EXCLUSIVE_GATEWAY &&
        (rv = attr_get(ps, n, "default", NULL, &b->refs[i].dflt)) != 0) {
        return rv;
    }
    for (const xmlNode *c = n->children; c != NULL; c = c->next) {
        if ((rv = child_common(ps, c, n, b->p->elements[i].id)) != 0) {
            return rv;
        }
    }
    return 0;
}

/* The <error> with this id (ps->errors is sorted by id), or NULL. */
static const struct error_def *error_def_find(const struct parse *ps,
                                              const char *id)
{
    size_t lo = 0, hi = ps->n_errors;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ps->errors[mid].id, id);
        if (c == 0) {
            return &ps->errors[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* boundaryEvent: interrupting, with one errorEventDefinition. */
static int boundary_parse(struct parse *ps, struct build *b, const xmlNode *n)
{
    struct bpmn_element *e;
    const xmlNode *definition = NULL;
    char *cancel = NULL, *error_ref = NULL, q[QUOTE_BYTES_MAX + 4];
    uint32_t i;
    int rv = element_add(ps, b, BPMN_BOUNDARY_EVENT, n, &i);

    if (rv != 0) {
        return rv;
    }
    e = &b->p->elements[i];
    e->cancel_activity = true;
    if ((rv = attr_get(ps, n, "attachedToRef", NULL, &b->refs[i].attached)) !=
            0 ||
        (rv = attr_get(ps, n, "cancelActivity", NULL, &cancel)) != 0) {
        return rv;
    }
    if (cancel != NULL && strcmp(cancel, "true") != 0) {
        rv = parse_fail(ps, BPMN_E_INVALID,
                        "unsupported cancelActivity '%s' of boundary event "
                        "'%s' at line %d (only interrupting boundary events "
                        "are supported)",
                        quote(cancel, q, sizeof(q)), e->id, e->line);
        free(cancel);
        return rv;
    }
    free(cancel);
    if (b->refs[i].attached == NULL) {
        return parse_fail(ps, BPMN_E_INVALID,
                          "boundary event '%s' has no attachedToRef at line "
                          "%d",
                          e->id, e->line);
    }
    for (const xmlNode *c = n->children; c != NULL; c = c->next) {
        if (xml_is(c, NS_BPMN, "errorEventDefinition") && definition == NULL) {
            definition = c;
            continue;
        }
        if (event_definition_is(c)) {
            return parse_fail(ps, BPMN_E_INVALID,
                              "unsupported event definition '%s' on "
                              "boundaryEvent '%s' at line %d (only one "
                              "errorEventDefinition is supported)",
                              (const char *)c->name, e->id, xml_line(c));
        }
        if ((rv = child_common(ps, c, n, e->id)) != 0) {
            return rv;
        }
    }
    if (definition == NULL) {
        return parse_fail(ps, BPMN_E_INVALID,
                          "boundary event '%s' has no errorEventDefinition "
                          "at line %d",
                          e->id, e->line);
    }
    if ((rv = attr_get(ps, definition, "errorRef", NULL, &error_ref)) != 0) {
        return rv;
    }
    if (error_ref != NULL) {
        const struct error_def *def = error_def_find(ps, error_ref);
        if (def == NULL || def->code == NULL || def->code[0] == '\0') {
            rv = parse_fail(
                ps, BPMN_E_INVALID,
                def == NULL ? "errorRef '%s' of boundary event '%s' at line "
                              "%d names no <error> of the definitions"
                            : "error '%s' caught by boundary event '%s' at "
                              "line %d has no errorCode",
                quote(error_ref, q, sizeof(q)), e->id, xml_line(definition));
            free(error_ref);
            return rv;
        }
        free(error_ref);
        e->error_code = text_copy(BAD_CAST def->code);
        if (e->error_code == NULL) {
            return parse_nomem(ps);
        }
    }
    return 0;
}

/* sequenceFlow: sourceRef, targetRef and a FEEL condition. */
static int flow_parse(struct parse *ps, struct build *b, const xmlNode *n)
{
    struct bpmn_element *e;
    struct refs *r;
    uint32_t i;
    char q[QUOTE_BYTES_MAX + 4];
    int rv = element_add(ps, b, BPMN_SEQUENCE_FLOW, n, &i);

    if (rv != 0) {
        return rv;
    }
    e = &b->p->elements[i];
    r = &b->refs[i];
    if ((rv = attr_get(ps, n, "sourceRef", NULL, &r->source)) != 0 ||
        (rv = attr_get(ps, n, "targetRef", NULL, &r->target)) != 0) {
        return rv;
    }
    if (r->source == NULL || r->target == NULL) {
        return parse_fail(
            ps, BPMN_E_INVALID, "sequence flow '%s' has no %s at line %d",
            e->id, r->source == NULL ? "sourceRef" : "targetRef", e->line);
    }
    for (const xmlNode *c = n->children; c != NULL; c = c->next) {
        struct bpmn_value cond = {NULL, false};
        char *text;

        if (!xml_is(c, NS_BPMN, "conditionExpression")) {
            if ((rv = child_common(ps, c, n, e->id)) != 0) {
                return rv;
            }
            continue;
        }
        if (e->condition != NULL) {
            return parse_fail(ps, BPMN_E_INVALID,
                              "sequence flow '%s' has more than one "
                              "conditionExpression (line %d)",
                              e->id, xml_line(c));
        }
        if ((rv = text_get(ps, c, &text)) != 0) {
            return rv;
        }
        value_set(&cond, text);
        if (!cond.is_expr || cond.text[0] == '\0') {
            text_trim(cond.text);
            rv = parse_fail(ps, BPMN_E_INVALID,
                            "condition '%s' of sequence flow '%s' at line "
                            "%d is not a FEEL expression (write it as "
                            "'= expression')",
                            quote(cond.is_expr ? "=" : cond.text, q, sizeof(q)),
                            e->id, xml_line(c));
            free(cond.text);
            return rv;
        }
        e->condition = cond.text;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Processes
 * --------------------------------------------------------------------- */

/* BPMN elements of a process without execution semantics: artifacts and
 * lanes. */
static bool process_child_ignorable(const xmlNode *c)
{
    static const char *const names[] = {
        "documentation",  "extensionElements", "laneSet",
        "textAnnotation", "association",       "group",
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (xml_is(c, NS_BPMN, names[i])) {
            return true;
        }
    }
    return false;
}

/* Walks the children of <process>, adding one element per flow element. */
static int process_parse(struct parse *ps, struct build *b, const xmlNode *n)
{
    for (const xmlNode *c = n->children; c != NULL; c = c->next) {
        char what[64], q[QUOTE_BYTES_MAX + 4], *id = NULL;
        int rv;

        if (c->type != XML_ELEMENT_NODE || process_child_ignorable(c)) {
            continue;
        }
        if (xml_is(c, NS_BPMN, "startEvent")) {
            rv = event_parse(ps, b, c, BPMN_START_EVENT);
        } else if (xml_is(c, NS_BPMN, "endEvent")) {
            rv = event_parse(ps, b, c, BPMN_END_EVENT);
        } else if (xml_is(c, NS_BPMN, "serviceTask")) {
            rv = service_task_parse(ps, b, c);
        } else if (xml_is(c, NS_BPMN, "exclusiveGateway")) {
            rv = gateway_parse(ps, b, c, BPMN_EXCLUSIVE_GATEWAY);
        } else if (xml_is(c, NS_BPMN, "parallelGateway")) {
            rv = gateway_parse(ps, b, c, BPMN_PARALLEL_GATEWAY);
        } else if (xml_is(c, NS_BPMN, "boundaryEvent")) {
            rv = boundary_parse(ps, b, c);
        } else if (xml_is(c, NS_BPMN, "sequenceFlow")) {
            rv = flow_parse(ps, b, c);
        } else {
            if ((rv = attr_get(ps, c, "id", NULL, &id)) != 0) {
                return rv;
            }
            xml_name(c, what, sizeof(what));
            rv = parse_fail(ps, BPMN_E_INVALID,
                            "unsupported element '%s' (id '%s') at line %d",
                            what, quote(id, q, sizeof(q)), xml_line(c));
            free(id);
        }
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static int id_entry_cmp(const void *a, const void *b)
{
    const struct id_entry *x = a, *y = b;
    int c = strcmp(x->id, y->id);

    if (c != 0) {
        return c;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Index of id in the sorted index, or BPMN_NONE. */
static uint32_t build_find(const struct build *b, const char *id)
{
    size_t lo = 0, hi = b->p->n_elements;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(b->index[mid].id, id);
        if (c == 0) {
            return b->index[mid].index;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return BPMN_NONE;
}

static bool flow_node_is(const struct bpmn_element *e)
{
    return e->type != BPMN_SEQUENCE_FLOW && e->type != BPMN_PROCESS;
}

/* Resolves a sequence flow's end (what is "sourceRef" or "targetRef") to a
 * flow node index. */
static int flow_end_resolve(struct parse *ps, const struct build *b,
                            const struct bpmn_element *f, const char *ref,
                            const char *what, uint32_t *out)
{
    char q[QUOTE_BYTES_MAX + 4];
    uint32_t i = build_find(b, ref);

    if (i == BPMN_NONE) {
        return parse_fail(ps, BPMN_E_INVALID,
                          "sequence flow '%s' references unknown %s '%s' at "
                          "line %d",
                          f->id, what, quote(ref, q, sizeof(q)), f->line);
    }
    if (!flow_node_is(&b->p->elements[i])) {
        return parse_fail(ps, BPMN_E_INVALID,
                          "sequence flow '%s' has %s '%s', which is not a "
                          "flow node, at line %d",
                          f->id, what, quote(ref, q, sizeof(q)), f->line);
    }
    *out = i;
    return 0;
}

/* Fills one of the index arrays of every flow node from the counts. */
static int edges_alloc(struct parse *ps, struct bpmn_process *p,
                       const size_t *n_in, const size_t *n_out,
                       const size_t *n_bound)
{
    for (size_t i = 0; i < p->n_elements; i++) {
        struct bpmn_element *e = &p->elements[i];
        if (n_in[i] > 0 &&
            (e->incoming = malloc(n_in[i] * sizeof(uint32_t))) == NULL) {
            return parse_nomem(ps);
        }
        if (n_out[i] > 0 &&
            (e->outgoing = malloc(n_out[i] * sizeof(uint32_t))) == NULL) {
            return parse_nomem(ps);
        }
        if (n_bound[i] > 0 &&
            (e->boundaries = malloc(n_bound[i] * sizeof(uint32_t))) == NULL) {
            return parse_nomem(ps);
        }
    }
    return 0;
}

/* Builds the id index (refusing duplicates) and resolves every reference:
 * flow ends, incoming/outgoing, gateway defaults, boundary attachments. */
static int process_resolve(struct parse *ps, struct build *b)
{
    struct bpmn_process *p = b->p;
    size_t n = p->n_elements, *counts, *n_in, *n_out, *n_bound;
    char q[QUOTE_BYTES_MAX + 4];
    int rv = 0;

    b->index = malloc((n > 0 ? n : 1) * sizeof(*b->index));
    if (b->index == NULL) {
        return parse_nomem(ps);
    }
    for (size_t i = 0; i < n; i++) {
        b->index[i].id = p->elements[i].id;
        b->index[i].index = (uint32_t)i;
    }
    qsort(b->index, n, sizeof(*b->index), id_entry_cmp);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(b->index[i - 1].id, b->index[i].id) == 0) {
            const struct bpmn_element *first =
                &p->elements[b->index[i - 1].index];
            const struct bpmn_element *dup = &p->elements[b->index[i].index];
            return parse_fail(ps, BPMN_E_INVALID,
                              "duplicate id '%s' at line %d (first used at "
                              "line %d)",
                              quote(dup->id, q, sizeof(q)), dup->line,
                              first->line);
        }
    }
    if (build_find(b, p->id) != BPMN_NONE) {
        const struct bpmn_element *dup = &p->elements[build_find(b, p->id)];
        return parse_fail(ps, BPMN_E_INVALID,
                          "duplicate id '%s' at line %d (also the process "
                          "id)",
                          dup->id, dup->line);
    }

    /* Flow ends, then the counts of incoming, outgoing and boundaries. */
    counts = calloc(3 * (n > 0 ? n : 1), sizeof(*counts));
    if (counts == NULL) {
        return parse_nomem(ps);
    }
    n_in = counts;
    n_out = counts + n;
    n_bound = counts + 2 * n;
    for (size_t i = 0; i < n && rv == 0; i++) {
        struct bpmn_element *e = &p->elements[i];
        if (e->type == BPMN_SEQUENCE_FLOW) {
            if ((rv = flow_end_resolve(ps, b, e, b->refs[i].source, "sourceRef",
                                       &e->source)) != 0 ||
                (rv = flow_end_resolve(ps, b, e, b->refs[i].target, "targetRef",
                                       &e->target)) != 0) {
                break;
            }
            n_out[e->source]++;
            n_in[e->target]++;
        } else if (e->type == BPMN_BOUNDARY_EVENT) {
            uint32_t t = build_find(b, b->refs[i].attached);
            if (t == BPMN_NONE) {
                rv = parse_fail(ps, BPMN_E_INVALID,
                                "boundary event '%s' is attached to unknown "
                                "element '%s' at line %d",
                                e->id, quote(b->refs[i].attached, q, sizeof(q)),
                                e->line);
            } else if (p->elements[t].type != BPMN_SERVICE_TASK) {
                rv = parse_fail(ps, BPMN_E_INVALID,
                                "boundary event '%s' is attached to '%s', "
                                "which is not a service task, at line %d",
                                e->id, p->elements[t].id, e->line);
            } else {
                e->attached_to = t;
                n_bound[t]++;
            }
        }
    }
    if (rv == 0) {
        rv = edges_alloc(ps, p, n_in, n_out, n_bound);
    }
    free(counts);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < n; i++) {
        struct bpmn_element *e = &p->elements[i];
        if (e->type == BPMN_SEQUENCE_FLOW) {
            struct bpmn_element *s = &p->elements[e->source];
            struct bpmn_element *t = &p->elements[e->target];
            s->outgoing[s->n_outgoing++] = (uint32_t)i;
            t->incoming[t->n_incoming++] = (uint32_t)i;
        } else if (e->type == BPMN_BOUNDARY_EVENT) {
            struct bpmn_element *t = &p->elements[e->attached_to];
            t->boundaries[t->n_boundaries++] = (uint32_t)i;
        }
    }

    /* Exclusive gateways' default flows. */
    for (size_t i = 0; i < n; i++) {
        struct bpmn_element *e = &p->elements[i];
        const char *ref = b->refs[i].dflt;
        uint32_t f;

        if (e->type != BPMN_EXCLUSIVE_GATEWAY || ref == NULL) {
            continue;
        }
        f = build_find(b, ref);
        if (f == BPMN_NONE || p->elements[f].type != BPMN_SEQUENCE_FLOW) {
            return parse_fail(ps, BPMN_E_INVALID,
                              "default flow '%s' of exclusive gateway '%s' "
                              "at line %d is not a sequence flow of the "
                              "process",
                              quote(ref, q, sizeof(q)), e->id, e->line);
        }
        if (p->elements[f].source != i) {
            return parse_fail(ps, BPMN_E_INVALID,
                              "default flow '%s' of exclusive gateway '%s' "
                              "at line %d is not one of its outgoing "
                              "sequence flows",
                              p->elements[f].id, e->id, e->line);
        }
        e->default_flow = f;
    }
    return 0;
}

/* The rules of bpmn.h on a resolved process. */
static int process_validate(struct parse *ps, struct bpmn_process *p)
{
    uint32_t start = BPMN_NONE;

    for (size_t i = 0; i < p->n_elements; i++) {
        const struct bpmn_element *e = &p->elements[i];

        switch (e->type) {
        case BPMN_START_EVENT:
            if (start != BPMN_NONE) {
                return parse_fail(ps, BPMN_E_INVALID,
                                  "process '%s' has more than one none start "
                                  "event: '%s' at line %d and '%s' at line "
                                  "%d",
                                  p->id, p->elements[start].id,
                                  p->elements[start].line, e->id, e->line);
            }
            start = (uint32_t)i;
            if (e->n_incoming > 0) {
                return parse_fail(ps, BPMN_E_INVALID,
                                  "start event '%s' at line %d has an "
                                  "incoming sequence flow '%s'",
                                  e->id, e->line,
                                  p->elements[e->incoming[0]].id);
            }
            break;
        case BPMN_END_EVENT:
            if (e->n_outgoing > 0) {
                return parse_fail(ps, BPMN_E_INVALID,
                                  "end event '%s' at line %d has an outgoing "
                                  "sequence flow '%s'",
                                  e->id, e->line,
                                  p->elements[e->outgoing[0]].id);
            }
            break;
        case BPMN_BOUNDARY_EVENT:
            if (e->n_incoming > 0) {
                return parse_fail(ps, BPMN_E_INVALID,
                                  "boundary event '%s' at line %d has an "
                                  "incoming sequence flow '%s'",
                                  e->id, e->line,
                                  p->elements[e->incoming[0]].id);
            }
            if (e->n_outgoing == 0) {
                return parse_fail(ps, BPMN_E_INVALID,
                                  "boundary event '%s' at line %d has no "
                                  "outgoing sequence flow",
                                  e->id, e->line);
            }
            break;
        case BPMN_EXCLUSIVE_GATEWAY:
            for (size_t k = 0; k < e->n_outgoing && e->n_outgoing > 1; k++) {
                const struct bpmn_element *f = &p->elements[e->outgoing[k]];
                if (e->outgoing[k] != e->default_flow && f->condition == NULL) {
                    return parse_fail(ps, BPMN_E_INVALID,
                                      "sequence flow '%s' at line %d leaves "
                                      "exclusive gateway '%s' without a "
                                      "condition and is not its default flow",
                                      f->id, f->line, e->id);
                }
            }
            break;
        case BPMN_SEQUENCE_FLOW:
            if (e->condition != NULL &&
                p->elements[e->source].type != BPMN_EXCLUSIVE_GATEWAY) {
                return parse_fail(ps, BPMN_E_INVALID,
                                  "sequence flow '%s' at line %d has a "
                                  "condition but does not leave an exclusive "
                                  "gateway",
                                  e->id, e->line);
            }
            if (p->elements[e->target].type == BPMN_BOUNDARY_EVENT) {
                return parse_fail(ps, BPMN_E_INVALID,
                                  "boundary event '%s' has an incoming "
                                  "sequence flow '%s' at line %d",
                                  p->elements[e->target].id, e->id, e->line);
            }
            break;
        case BPMN_SERVICE_TASK:
            assert(e->job_type.text != NULL);
            assert(e->job_retries.text != NULL);
            break;
        case BPMN_PARALLEL_GATEWAY:
        case BPMN_PROCESS:
            break;
        }
    }
    if (start == BPMN_NONE) {
        return parse_fail(ps, BPMN_E_INVALID,
                          "process '%s' has no none start event", p->id);
    }
    p->start = start;
    return 0;
}

/* Parses, resolves and validates one <process> into p (zeroed by the
 * caller, freed by bpmn_definitions_free whatever happens). */
static int process_build(struct parse *ps, struct bpmn_process *p,
                         const xmlNode *n)
{
    struct build b = {.p = p};
    int rv;

    p->start = BPMN_NONE;
    if ((rv = attr_get(ps, n, "id", NULL, &p->id)) != 0 ||
        (rv = attr_get(ps, n, "name", NULL, &p->name)) != 0) {
        return rv;
    }
    if (p->id == NULL || p->id[0] == '\0') {
        return parse_fail(ps, BPMN_E_INVALID,
                          "process without an id at line %d", xml_line(n));
    }
    rv = process_parse(ps, &b, n);
    if (rv == 0) {
        rv = process_resolve(ps, &b);
    }
    if (rv == 0) {
        rv = process_validate(ps, p);
    }
    for (size_t i = 0; i < p->n_elements; i++) {
        refs_free(&b.refs[i]);
    }
    free(b.refs);
    free(b.index);
    if (rv == 0 && p->n_elements < b.cap) {
        /* Give back the unused tail of the element array. */
        struct bpmn_element *shrunk =
            realloc(p->elements, p->n_elements * sizeof(*shrunk));
        if (shrunk != NULL) {
            p->elements = shrunk;
        }
    }
    assert(rv != 0 || p->start < p->n_elements);
    return rv;
}

/* ------------------------------------------------------------------------
 * Definitions
 * --------------------------------------------------------------------- */

static void errors_free(struct parse *ps)
{
    for (size_t i = 0; i < ps->n_errors; i++) {
        free(ps->errors[i].id);
        free(ps->errors[i].code);
    }
    free(ps->errors);
    ps->errors = NULL;
    ps->n_errors = 0;
}

static int error_def_cmp(const void *a, const void *b)
{
    const struct error_def *x = a, *y = b;
    int c = strcmp(x->id, y->id);

    if (c != 0) {
        return c;
    }
    return x->line < y->line ? -1 : x->line > y->line;
}

/* Collects the <error> elements of <definitions>, sorted by id (so that
 * each errorRef is a binary search), refusing duplicate ids. */
static int errors_collect(struct parse *ps, const xmlNode *root)
{
    char q[QUOTE_BYTES_MAX + 4];

    for (const xmlNode *c = root->children; c != NULL; c = c->next) {
        struct error_def *d;
        int rv;

        if (!xml_is(c, NS_BPMN, "error")) {
            continue;
        }
        d = realloc(ps->errors, (ps->n_errors + 1) * sizeof(*d));
        if (d == NULL) {
            return parse_nomem(ps);
        }
        ps->errors = d;
        d = &ps->errors[ps->n_errors++];
        memset(d, 0, sizeof(*d));
        d->line = xml_line(c);
        if ((rv = attr_get(ps, c, "id", NULL, &d->id)) != 0 ||
            (rv = attr_get(ps, c, "errorCode", NULL, &d->code)) != 0) {
            return rv;
        }
        if (d->id == NULL || d->id[0] == '\0') {
            return parse_fail(ps, BPMN_E_INVALID,
                              "error without an id at line %d", d->line);
        }
    }
    if (ps->n_errors > 1) {
        qsort(ps->errors, ps->n_errors, sizeof(*ps->errors), error_def_cmp);
    }
    for (size_t i = 1; i < ps->n_errors; i++) {
        if (strcmp(ps->errors[i - 1].id, ps->errors[i].id) == 0) {
            return parse_fail(ps, BPMN_E_INVALID,
                              "duplicate error id '%s' at line %d (first "
                              "used at line %d)",
                              quote(ps->errors[i].id, q, sizeof(q)),
                              ps->errors[i].line, ps->errors[i - 1].line);
        }
    }
    return 0;
}

/* Walks <definitions>: every executable process becomes one entry. */
static int definitions_build(struct parse *ps, struct bpmn_definitions *defs,
                             const xmlNode *root)
{
    size_t n_processes = 0;
    int rv;

    if (root == NULL || !xml_is(root, NS_BPMN, "definitions")) {
        char what[64] = "nothing";
        if (root != NULL) {
            xml_name(root, what, sizeof(what));
        }
        return parse_fail(ps, BPMN_E_INVALID,
                          "root element is '%s' at line %d, expected "
                          "'definitions' in namespace " NS_BPMN,
                          what, root != NULL ? xml_line(root) : 0);
    }
    if ((rv = errors_collect(ps, root)) != 0) {
        return rv;
    }
    for (const xmlNode *c = root->children; c != NULL; c = c->next) {
        if (xml_is(c, NS_BPMN, "process")) {
            n_processes++;
        }
    }
    if (n_processes > PROCESSES_MAX) {
        return parse_fail(ps, BPMN_E_LIMIT,
                          "more than %d processes in one resource",
                          PROCESSES_MAX);
    }
    defs->processes =
        calloc(n_processes > 0 ? n_processes : 1, sizeof(*defs->processes));
    if (defs->processes == NULL) {
        return parse_nomem(ps);
    }
    for (const xmlNode *c = root->children; c != NULL; c = c->next) {
        struct bpmn_process *p;
        char *executable = NULL, q[QUOTE_BYTES_MAX + 4];

        if (!xml_is(c, NS_BPMN, "process")) {
            continue;
        }
        if ((rv = attr_get(ps, c, "isExecutable", NULL, &executable)) != 0) {
            return rv;
        }
        if (executable != NULL && strcmp(executable, "false") == 0) {
            free(executable);
            continue;
        }
        if (executable != NULL && strcmp(executable, "true") != 0) {
            rv = parse_fail(ps, BPMN_E_INVALID,
                            "invalid isExecutable '%s' of the process at "
                            "line %d (true or false)",
                            quote(executable, q, sizeof(q)), xml_line(c));
            free(executable);
            return rv;
        }
        free(executable);
        assert(defs->n_processes < n_processes);
        p = &defs->processes[defs->n_processes++];
        if ((rv = process_build(ps, p, c)) != 0) {
            return rv;
        }
        for (size_t k = 0; k + 1 < defs->n_processes; k++) {
            if (strcmp(defs->processes[k].id, p->id) == 0) {
                return parse_fail(ps, BPMN_E_INVALID,
                                  "duplicate process id '%s' at line %d", p->id,
                                  xml_line(c));
            }
        }
    }
    if (defs->n_processes == 0) {
        return parse_fail(ps, BPMN_E_INVALID,
                          "no executable process: the definitions hold %zu "
                          "process(es), none with isExecutable=\"true\"",
                          n_processes);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Public API
 * --------------------------------------------------------------------- */

int bpmn_parse(const char *xml, size_t len, const char *resource_name,
               struct bpmn_definitions **out, char *err, size_t errlen)
{
    struct parse ps = {.resource = resource_name, .err = err, .errlen = errlen};
    struct bpmn_definitions *defs = NULL;
    xmlDocPtr doc = NULL;
    int rv;

    assert(out != NULL);
    *out = NULL;
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (xml == NULL || len == 0) {
        return parse_fail(&ps, BPMN_E_INVALID, "empty BPMN resource");
    }
    if (len > BPMN_RESOURCE_BYTES_MAX) {
        return parse_fail(&ps, BPMN_E_LIMIT,
                          "BPMN resource of %zu bytes is larger than the "
                          "limit of %u bytes",
                          len, (unsigned)BPMN_RESOURCE_BYTES_MAX);
    }
    if ((rv = xml_read(&ps, xml, len, &doc)) != 0) {
        assert(doc == NULL);
        return rv;
    }
    defs = calloc(1, sizeof(*defs));
    if (defs == NULL) {
        rv = parse_nomem(&ps);
    } else {
        rv = definitions_build(&ps, defs, xmlDocGetRootElement(doc));
    }
    errors_free(&ps);
    xmlFreeDoc(doc);
    if (rv != 0) {
        assert(rv == ps.rv);
        bpmn_definitions_free(defs);
        return rv;
    }
    assert(defs->n_processes >= 1);
    *out = defs;
    return 0;
}

void bpmn_definitions_free(struct bpmn_definitions *defs)
{
    if (defs == NULL) {
        return;
    }
    for (size_t i = 0; i < defs->n_processes; i++) {
        struct bpmn_process *p = &defs->processes[i];
        for (size_t k = 0; k < p->n_elements; k++) {
            element_free(&p->elements[k]);
        }
        free(p->elements);
        free(p->id);
        free(p->name);
    }
    free(defs->processes);
    free(defs);
}

uint32_t bpmn_element_find(const struct bpmn_process *p, const char *id)
{
    assert(p != NULL);
    if (id == NULL) {
        return BPMN_NONE;
    }
    for (size_t i = 0; i < p->n_elements; i++) {
        if (strcmp(p->elements[i].id, id) == 0) {
            return (uint32_t)i;
        }
    }
    return BPMN_NONE;
}

const char *bpmn_element_type_name(enum bpmn_element_type type)
{
    switch (type) {
    case BPMN_PROCESS:
        return "PROCESS";
    case BPMN_START_EVENT:
        return "START_EVENT";
    case BPMN_END_EVENT:
        return "END_EVENT";
    case BPMN_SERVICE_TASK:
        return "SERVICE_TASK";
    case BPMN_EXCLUSIVE_GATEWAY:
        return "EXCLUSIVE_GATEWAY";
    case BPMN_PARALLEL_GATEWAY:
        return "PARALLEL_GATEWAY";
    case BPMN_BOUNDARY_EVENT:
        return "BOUNDARY_EVENT";
    case BPMN_SEQUENCE_FLOW:
        return "SEQUENCE_FLOW";
    }
    return "UNKNOWN";
}
