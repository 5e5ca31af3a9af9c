/* feel.c: the FEEL parser (see feel.h for the language subset).
 *
 * Data flow: feel_parse() takes NUL-terminated text, a lexer turns it into
 * tokens on demand (one token of lookahead, columns counted in code
 * points), and a recursive-descent parser builds the AST of
 * feel_internal.h in an arena owned by the returned struct feel_expr.
 * Constants (numbers, strings) become jansson values held by one array of
 * the expression, so feel_expr_free() releases everything at once: the
 * arena chunks and that array.
 *
 * Precedence, lowest first (FEEL grammar): if/for/some/every, or, and,
 * comparison (= != < <= > >= between in), + -, * /, **, unary -, postfix
 * (.name, [filter]), primary. Chains of one precedence (a + b - c, a and b
 * and c) become one n-ary node, so long flat expressions stay shallow.
 *
 * Bounds: text length <= FEEL_TEXT_MAX; the nesting of parse_expr calls
 * and the AST depth are both <= FEEL_DEPTH_MAX, so neither this parser nor
 * the evaluator can overflow the stack on hostile input. */
#define _POSIX_C_SOURCE 200809L /* strnlen */
#include "broker/engine/feel.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/engine/feel_internal.h"

/* ------------------------------------------------------------------ */
/* Arena                                                                */
/* ------------------------------------------------------------------ */

#define FEEL_CHUNK_SIZE 4096

struct feel_chunk {
    struct feel_chunk *next;
    size_t used;
    size_t cap;
    max_align_t data[];
};

/* Zeroed, aligned memory that lives as long as expr. */
static void *feel_arena_alloc(struct feel_expr *expr, size_t n)
{
    struct feel_chunk *ch = expr->chunks;
    size_t align = sizeof(max_align_t);
    size_t need = (n + align - 1) / align * align;
    void *mem;

    assert(n > 0);
    if (ch == NULL || ch->cap - ch->used < need) {
        size_t cap = need > FEEL_CHUNK_SIZE ? need : FEEL_CHUNK_SIZE;
        ch = malloc(sizeof(*ch) + cap);
        if (ch == NULL) {
            return NULL;
        }
        ch->next = expr->chunks;
        ch->used = 0;
        ch->cap = cap;
        expr->chunks = ch;
    }
    mem = (char *)ch->data + ch->used;
    ch->used += need;
    assert(ch->used <= ch->cap);
    memset(mem, 0, n);
    return mem;
}

static char *feel_arena_strndup(struct feel_expr *expr, const char *s, size_t n)
{
    char *d = feel_arena_alloc(expr, n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* ------------------------------------------------------------------ */
/* Lexer                                                                */
/* ------------------------------------------------------------------ */

enum feel_tok_kind {
    T_EOF,
    T_NUM,
    T_STR,
    T_NAME,
    T_LP,
    T_RP,
    T_LB,
    T_RB,
    T_LC,
    T_RC,
    T_COMMA,
    T_COLON,
    T_DOT,
    T_DOTDOT,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_POW,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    /* keywords */
    T_TRUE,
    T_FALSE,
    T_NULL,
    T_AND,
    T_OR,
    T_IF,
    T_THEN,
    T_ELSE,
    T_IN,
    T_BETWEEN,
    T_FOR,
    T_RETURN,
    T_SOME,
    T_EVERY,
    T_SATISFIES,
};

static const struct {
    const char *word;
    enum feel_tok_kind kind;
} feel_keywords[] = {
    {"true", T_TRUE},       {"false", T_FALSE}, {"null", T_NULL},
    {"and", T_AND},         {"or", T_OR},       {"if", T_IF},
    {"then", T_THEN},       {"else", T_ELSE},   {"in", T_IN},
    {"between", T_BETWEEN}, {"for", T_FOR},     {"return", T_RETURN},
    {"some", T_SOME},       {"every", T_EVERY}, {"satisfies", T_SATISFIES},
};

struct feel_tok {
    enum feel_tok_kind kind;
    size_t start; /* byte offset in the text */
    size_t len;   /* bytes */
    unsigned column;
    json_t *value;    /* NUM, STR: borrowed from expr->consts */
    const char *name; /* NAME: arena string */
    bool call;        /* NAME: the next character is '(' */
};

struct feel_vec {
    void **v;
    size_t n;
    size_t cap;
};

struct feel_parser {
    const char *text;
    size_t len;
    size_t pos;   /* next byte to lex */
    unsigned col; /* column of pos */
    struct feel_tok tok;
    struct feel_expr *expr;
    char *err;
    size_t errlen;
    int rc;
    unsigned nest;         /* parse_expr calls in progress */
    unsigned no_filter;    /* nest at which '[' ends an interval, or 0 */
    struct feel_vec bound; /* names bound by enclosing for/some/every */
    struct feel_vec names; /* names read (may repeat) */
};

static void feel_parse_fail(struct feel_parser *p, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void feel_parse_fail(struct feel_parser *p, int rc, const char *fmt, ...)
{
    va_list ap;

    assert(rc < 0);
    if (p->rc != 0) {
        return; /* the first error is the one reported */
    }
    p->rc = rc;
    if (p->err != NULL && p->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
}

static void feel_parse_nomem(struct feel_parser *p)
{
    feel_parse_fail(p, FEEL_E_NOMEM, "out of memory parsing the expression");
}

static int feel_vec_push(struct feel_parser *p, struct feel_vec *v, void *x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap == 0 ? 8 : v->cap * 2;
        void **nv = realloc(v->v, cap * sizeof(*nv));
        if (nv == NULL) {
            feel_parse_nomem(p);
            return -1;
        }
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

static void feel_vec_free(struct feel_vec *v)
{
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

size_t feel_utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
        return 0;
    }
    return n;
}

static void feel_lex_advance(struct feel_parser *p, size_t n)
{
    assert(p->pos + n <= p->len);
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)p->text[p->pos + i] & 0xc0) != 0x80) {
            p->col++;
        }
    }
    p->pos += n;
}

static int feel_lex_peek(const struct feel_parser *p, size_t ahead)
{
    return p->pos + ahead < p->len ? (unsigned char)p->text[p->pos + ahead]
                                   : -1;
}

static bool feel_is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

static bool feel_is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool feel_is_name_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '$' || c >= 0x80;
}

static bool feel_is_name_char(int c)
{
    return feel_is_name_start(c) || feel_is_digit(c);
}

/* Skips whitespace and comments; false (error recorded) on an
 * unterminated block comment. */
static bool feel_lex_skip(struct feel_parser *p)
{
    for (;;) {
        int c = feel_lex_peek(p, 0);
        if (feel_is_space(c)) {
            feel_lex_advance(p, 1);
        } else if (c == '/' && feel_lex_peek(p, 1) == '/') {
            while (p->pos < p->len && p->text[p->pos] != '\n') {
                feel_lex_advance(p, 1);
            }
        } else if (c == '/' && feel_lex_peek(p, 1) == '*') {
            unsigned col = p->col;
            const char *end = strstr(p->text + p->pos + 2, "*/");
            if (end == NULL) {
                feel_parse_fail(p, FEEL_E_SYNTAX,
                                "unterminated comment at column %u", col);
                return false;
            }
            feel_lex_advance(p, (size_t)(end - (p->text + p->pos)) + 2);
        } else {
            return true;
        }
    }
}

/* Bytes of text at s matching the multi-word function name fname, words
 * separated by any whitespace; 0 if it does not match. */
static size_t feel_lex_match_words(const char *s, size_t avail,
                                   const char *fname)
{
    size_t i = 0;

    for (const char *f = fname; *f != '\0'; f++) {
        if (*f == ' ') {
            if (i >= avail || !feel_is_space((unsigned char)s[i])) {
                return 0;
            }
            while (i < avail && feel_is_space((unsigned char)s[i])) {
                i++;
            }
        } else {
            if (i >= avail || s[i] != *f) {
                return 0;
            }
            i++;
        }
    }
    if (i < avail && feel_is_name_char((unsigned char)s[i])) {
        return 0;
    }
    return i;
}

/* True if the next non-space character after byte offset at is '('. */
static bool feel_lex_paren_follows(const struct feel_parser *p, size_t at)
{
    while (at < p->len && feel_is_space((unsigned char)p->text[at])) {
        at++;
    }
    return at < p->len && p->text[at] == '(';
}

static int feel_lex_const(struct feel_parser *p, json_t *v)
{
    if (v == NULL || json_array_append_new(p->expr->consts, v) != 0) {
        feel_parse_nomem(p);
        return -1;
    }
    p->tok.value = v;
    return 0;
}

static int feel_lex_number(struct feel_parser *p)
{
    size_t s = p->pos, e = p->pos;
    bool frac = false;
    json_int_t iv = 0;
    bool overflow = false;

    while (e < p->len && feel_is_digit((unsigned char)p->text[e])) {
        int d = p->text[e] - '0';
        if (iv > (INT64_MAX - d) / 10) {
            overflow = true;
        } else {
            iv = iv * 10 + d;
        }
        e++;
    }
    if (e + 1 < p->len && p->text[e] == '.' &&
        feel_is_digit((unsigned char)p->text[e + 1])) {
        frac = true;
        e++;
        while (e < p->len && feel_is_digit((unsigned char)p->text[e])) {
            e++;
        }
    }
    assert(e > s);
    p->tok.kind = T_NUM;
    p->tok.len = e - s;
    feel_lex_advance(p, e - s);
    if (!frac && !overflow) {
        return feel_lex_const(p, json_integer(iv));
    } else {
        struct feel_ctx c = {.rc = 0};
        char *buf = malloc(e - s + 1);
        double d;
        json_t *v;
        if (buf == NULL) {
            feel_parse_nomem(p);
            return -1;
        }
        memcpy(buf, p->text + s, e - s);
        buf[e - s] = '\0';
        d = strtod(buf, NULL);
        free(buf);
        v = feel_num_real(&c, d);
        if (v != NULL && json_is_null(v)) {
            feel_parse_fail(p, FEEL_E_SYNTAX, "number too large at column %u",
                            p->tok.column);
            return -1;
        }
        return feel_lex_const(p, v);
    }
}

static int feel_hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)s[i], d;
        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            d = c - 'A' + 10;
        } else {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

static size_t feel_utf8_put(char *out, unsigned cp)
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

/* "..." with escapes \" \\ \/ \' \b \f \n \r \t \uXXXX (surrogate pairs
 * joined); the decoded text is never longer than the literal. */
static int feel_lex_string(struct feel_parser *p)
{
    unsigned col0 = p->col;
    char *buf = malloc(p->len - p->pos + 1);
    size_t n = 0;
    int rv = -1;

    if (buf == NULL) {
        feel_parse_nomem(p);
        return -1;
    }
    feel_lex_advance(p, 1); /* opening quote */
    for (;;) {
        int c = feel_lex_peek(p, 0);
        unsigned col = p->col;
        if (c < 0) {
            feel_parse_fail(p, FEEL_E_SYNTAX,
                            "unterminated string starting at column %u", col0);
            goto out;
        }
        if (c == '"') {
            feel_lex_advance(p, 1);
            break;
        }
        if (c != '\\') {
            size_t k = feel_utf8_seq((const unsigned char *)p->text + p->pos,
                                     p->len - p->pos);
            if (k == 0) {
                feel_parse_fail(p, FEEL_E_SYNTAX,
                                "invalid UTF-8 byte 0x%02x at column %u", c,
                                col);
                goto out;
            }
            memcpy(buf + n, p->text + p->pos, k);
            n += k;
            feel_lex_advance(p, k);
            continue;
        }
        c = feel_lex_peek(p, 1);
        switch (c) {
        case '"':
        case '\\':
        case '/':
        case '\'':
            buf[n++] = (char)c;
            break;
        case 'b':
            buf[n++] = '\b';
            break;
        case 'f':
            buf[n++] = '\f';
            break;
        case 'n':
            buf[n++] = '\n';
            break;
        case 'r':
            buf[n++] = '\r';
            break;
        case 't':
            buf[n++] = '\t';
            break;
        case 'u': {
            int hi =
                p->len - p->pos >= 6 ? feel_hex4(p->text + p->pos + 2) : -1;
            unsigned cp;
            if (hi < 0) {
                feel_parse_fail(p, FEEL_E_SYNTAX,
                                "\\u needs 4 hex digits at column %u", col);
                goto out;
            }
            cp = (unsigned)hi;
            if (hi >= 0xdc00 && hi <= 0xdfff) {
                feel_parse_fail(p, FEEL_E_SYNTAX,
                                "lone low surrogate \\u%04x at column %u",
                                (unsigned)hi, col);
                goto out;
            }
            if (hi >= 0xd800 && hi <= 0xdbff) {
                int lo = p->len - p->pos >= 12 && p->text[p->pos + 6] == '\\' &&
                                 p->text[p->pos + 7] == 'u'
                             ? feel_hex4(p->text + p->pos + 8)
                             : -1;
                if (lo < 0xdc00 || lo > 0xdfff) {
                    feel_parse_fail(p, FEEL_E_SYNTAX,
                                    "high surrogate \\u%04x without a low "
                                    "surrogate at column %u",
                                    (unsigned)hi, col);
                    goto out;
                }
                cp = 0x10000 + (((unsigned)hi - 0xd800) << 10) +
                     ((unsigned)lo - 0xdc00);
                feel_lex_advance(p, 6);
            }
            if (cp == 0) {
                feel_parse_fail(p, FEEL_E_SYNTAX,
                                "\\u0000 is not allowed in a string at "
                                "column %u",
                                col);
                goto out;
            }
            n += feel_utf8_put(buf + n, cp);
            feel_lex_advance(p, 4); /* the digits; the "\u" below */
            break;
        }
        default:
            if (c < 0) {
                feel_parse_fail(p, FEEL_E_SYNTAX,
                                "unterminated string starting at column %u",
                                col0);
            } else {
                feel_parse_fail(p, FEEL_E_SYNTAX,
                                "unknown escape '\\%c' at column %u",
                                c >= 0x20 && c < 0x7f ? c : '?', col);
            }
            goto out;
        }
        feel_lex_advance(p, 2);
    }
    p->tok.kind = T_STR;
    rv = feel_lex_const(p, json_stringn(buf, n));
out:
    free(buf);
    return rv;
}

/* A name: a known function name with spaces followed by '(', a backtick
 * quoted name, or letters/digits/_/$/non-ASCII; keywords are recognised
 * here. */
static int feel_lex_name(struct feel_parser *p)
{
    size_t best = 0;
    const char *best_name = NULL;
    size_t s = p->pos, e = p->pos;
    unsigned col = p->col;

    if (p->text[s] == '`') {
        const char *end = memchr(p->text + s + 1, '`', p->len - s - 1);
        if (end == NULL || end == p->text + s + 1) {
            feel_parse_fail(p, FEEL_E_SYNTAX, "%s quoted name at column %u",
                            end == NULL ? "unterminated" : "empty", col);
            return -1;
        }
        e = (size_t)(end - p->text);
        for (size_t i = s + 1; i < e;) {
            size_t k = feel_utf8_seq((const unsigned char *)p->text + i, e - i);
            if (k == 0) {
                feel_parse_fail(p, FEEL_E_SYNTAX,
                                "invalid UTF-8 in quoted name at column %u",
                                col);
                return -1;
            }
            i += k;
        }
        p->tok.kind = T_NAME;
        p->tok.name = feel_arena_strndup(p->expr, p->text + s + 1, e - s - 1);
        if (p->tok.name == NULL) {
            feel_parse_nomem(p);
            return -1;
        }
        p->tok.len = e + 1 - s;
        feel_lex_advance(p, e + 1 - s);
        p->tok.call = feel_lex_paren_follows(p, p->pos);
        return 0;
    }
    for (size_t i = 0; feel_fn_name_at(i) != NULL; i++) {
        const char *fname = feel_fn_name_at(i);
        size_t m;
        if (strchr(fname, ' ') == NULL) {
            continue;
        }
        m = feel_lex_match_words(p->text + s, p->len - s, fname);
        if (m > best && feel_lex_paren_follows(p, s + m)) {
            best = m;
            best_name = fname;
        }
    }
    if (best > 0) {
        p->tok.kind = T_NAME;
        p->tok.name = best_name; /* static storage */
        p->tok.len = best;
        p->tok.call = true;
        feel_lex_advance(p, best);
        return 0;
    }
    while (e < p->len && feel_is_name_char((unsigned char)p->text[e])) {
        if ((unsigned char)p->text[e] >= 0x80) {
            size_t k =
                feel_utf8_seq((const unsigned char *)p->text + e, p->len - e);
            if (k == 0) {
                feel_parse_fail(p, FEEL_E_SYNTAX,
                                "invalid UTF-8 byte 0x%02x at column %u",
                                (unsigned char)p->text[e], p->col);
                return -1;
            }
            e += k;
        } else {
            e++;
        }
    }
    assert(e > s);
    p->tok.len = e - s;
    for (size_t i = 0; i < sizeof(feel_keywords) / sizeof(feel_keywords[0]);
         i++) {
        if (strlen(feel_keywords[i].word) == e - s &&
            memcmp(feel_keywords[i].word, p->text + s, e - s) == 0) {
            p->tok.kind = feel_keywords[i].kind;
            feel_lex_advance(p, e - s);
            return 0;
        }
    }
    p->tok.kind = T_NAME;
    p->tok.name = feel_arena_strndup(p->expr, p->text + s, e - s);
    if (p->tok.name == NULL) {
        feel_parse_nomem(p);
        return -1;
    }
    feel_lex_advance(p, e - s);
    p->tok.call = feel_lex_paren_follows(p, p->pos);
    return 0;
}

/* Lexes the next token into p->tok; -1 (error recorded) on bad input. */
static int feel_lex_next(struct feel_parser *p)
{
    static const struct {
        const char *text;
        enum feel_tok_kind kind;
    } puncts[] = {
        /* two-character operators first */
        {"..", T_DOTDOT}, {"**", T_POW},  {"!=", T_NE},  {"<=", T_LE},
        {">=", T_GE},     {"(", T_LP},    {")", T_RP},   {"[", T_LB},
        {"]", T_RB},      {"{", T_LC},    {"}", T_RC},   {",", T_COMMA},
        {":", T_COLON},   {".", T_DOT},   {"+", T_PLUS}, {"-", T_MINUS},
        {"*", T_STAR},    {"/", T_SLASH}, {"=", T_EQ},   {"<", T_LT},
        {">", T_GT},
    };
    int c;

    if (p->rc != 0 || !feel_lex_skip(p)) {
        return -1;
    }
    memset(&p->tok, 0, sizeof(p->tok));
    p->tok.start = p->pos;
    p->tok.column = p->col;
    c = feel_lex_peek(p, 0);
    if (c < 0) {
        p->tok.kind = T_EOF;
        return 0;
    }
    if (feel_is_digit(c) || (c == '.' && feel_is_digit(feel_lex_peek(p, 1)))) {
        return feel_lex_number(p);
    }
    if (c == '"') {
        return feel_lex_string(p);
    }
    if (feel_is_name_start(c) || c == '`') {
        if (c >= 0x80 && feel_utf8_seq((const unsigned char *)p->text + p->pos,
                                       p->len - p->pos) == 0) {
            feel_parse_fail(p, FEEL_E_SYNTAX,
                            "invalid UTF-8 byte 0x%02x at column %u", c,
                            p->col);
            return -1;
        }
        return feel_lex_name(p);
    }
    for (size_t i = 0; i < sizeof(puncts) / sizeof(puncts[0]); i++) {
        size_t n = strlen(puncts[i].text);
        if (p->len - p->pos >= n &&
            memcmp(p->text + p->pos, puncts[i].text, n) == 0) {
            p->tok.kind = puncts[i].kind;
            p->tok.len = n;
            feel_lex_advance(p, n);
            return 0;
        }
    }
    if (c >= 0x20 && c < 0x7f) {
        feel_parse_fail(p, FEEL_E_SYNTAX,
                        "unexpected character '%c' at column %u", c, p->col);
    } else {
        feel_parse_fail(p, FEEL_E_SYNTAX, "unexpected byte 0x%02x at column %u",
                        c, p->col);
    }
    return -1;
}

/* A short description of the current token for error messages. */
static void feel_tok_describe(const struct feel_parser *p, char *buf, size_t n)
{
    const struct feel_tok *t = &p->tok;
    int shown = t->len > 24 ? 24 : (int)t->len;
    const char *dots = t->len > 24 ? "..." : "";

    switch (t->kind) {
    case T_EOF:
        snprintf(buf, n, "end of expression");
        break;
    case T_NUM:
        snprintf(buf, n, "number %.*s%s", shown, p->text + t->start, dots);
        break;
    case T_STR:
        snprintf(buf, n, "string %.*s%s", shown, p->text + t->start, dots);
        break;
    case T_NAME:
        snprintf(buf, n, "name '%.*s%s'", shown, p->text + t->start, dots);
        break;
    default:
        snprintf(buf, n, "'%.*s'", shown, p->text + t->start);
        break;
    }
}

static void feel_parse_unexpected(struct feel_parser *p, const char *wanted)
{
    char what[64];

    feel_tok_describe(p, what, sizeof(what));
    if (wanted != NULL) {
        feel_parse_fail(p, FEEL_E_SYNTAX,
                        "expected %s but found %s at column %u", wanted, what,
                        p->tok.column);
    } else {
        feel_parse_fail(p, FEEL_E_SYNTAX, "unexpected %s at column %u", what,
                        p->tok.column);
    }
}

/* Consumes a token of kind k or fails naming what was wanted. */
static int feel_parse_expect(struct feel_parser *p, enum feel_tok_kind k,
                             const char *wanted)
{
    if (p->tok.kind != k) {
        feel_parse_unexpected(p, wanted);
        return -1;
    }
    return feel_lex_next(p);
}

/* ------------------------------------------------------------------ */
/* AST construction                                                     */
/* ------------------------------------------------------------------ */

static struct feel_node *feel_node_new(struct feel_parser *p,
                                       enum feel_kind kind, unsigned column)
{
    struct feel_node *n = feel_arena_alloc(p->expr, sizeof(*n));

    if (n == NULL) {
        feel_parse_nomem(p);
        return NULL;
    }
    n->kind = kind;
    n->column = column;
    n->depth = 1;
    return n;
}

/* Gives n the kids kids[0..count) (copied into the arena) and its depth;
 * NULL (error recorded) when the AST gets deeper than FEEL_DEPTH_MAX. */
static struct feel_node *feel_node_kids(struct feel_parser *p,
                                        struct feel_node *n,
                                        struct feel_node *const *kids,
                                        size_t count)
{
    unsigned depth = 0;

    assert(n != NULL);
    assert(count > 0);
    n->kids = feel_arena_alloc(p->expr, count * sizeof(*n->kids));
    if (n->kids == NULL) {
        feel_parse_nomem(p);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        assert(kids[i] != NULL);
        n->kids[i] = kids[i];
        if (kids[i]->depth > depth) {
            depth = kids[i]->depth;
        }
    }
    n->nkids = count;
    n->depth = depth + 1;
    if (n->depth > FEEL_DEPTH_MAX) {
        feel_parse_fail(p, FEEL_E_LIMIT,
                        "expression nested deeper than %d levels at column %u",
                        FEEL_DEPTH_MAX, n->column);
        return NULL;
    }
    return n;
}

static struct feel_node *
feel_node_make(struct feel_parser *p, enum feel_kind kind, unsigned column,
               struct feel_node *a, struct feel_node *b, struct feel_node *c)
{
    struct feel_node *kids[3] = {a, b, c};
    size_t count = c != NULL ? 3 : b != NULL ? 2 : 1;
    struct feel_node *n = feel_node_new(p, kind, column);

    assert(a != NULL);
    if (b == NULL) {
        assert(c == NULL);
    }
    return n == NULL ? NULL : feel_node_kids(p, n, kids, count);
}

static struct feel_node *feel_node_from_vec(struct feel_parser *p,
                                            enum feel_kind kind,
                                            unsigned column, struct feel_vec *v)
{
    struct feel_node *n = feel_node_new(p, kind, column);

    if (n == NULL) {
        return NULL;
    }
    if (v->n == 0) {
        return n;
    }
    return feel_node_kids(p, n, (struct feel_node *const *)v->v, v->n);
}

/* ------------------------------------------------------------------ */
/* Grammar                                                              */
/* ------------------------------------------------------------------ */

static struct feel_node *feel_parse_expr(struct feel_parser *p);
static struct feel_node *feel_parse_add(struct feel_parser *p);

static bool feel_name_is_bound(const struct feel_parser *p, const char *name)
{
    for (size_t i = 0; i < p->bound.n; i++) {
        if (strcmp(p->bound.v[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* name(args...) with the current token the name. */
static struct feel_node *feel_parse_call(struct feel_parser *p)
{
    struct feel_node *n = feel_node_new(p, FEEL_N_CALL, p->tok.column);
    struct feel_vec args = {0};

    if (n == NULL) {
        return NULL;
    }
    n->name = p->tok.name;
    if (feel_lex_next(p) != 0 || feel_parse_expect(p, T_LP, "'('") != 0) {
        return NULL;
    }
    if (p->tok.kind != T_RP) {
        for (;;) {
            struct feel_node *a = feel_parse_expr(p);
            if (a == NULL || feel_vec_push(p, &args, a) != 0) {
                goto fail;
            }
            if (args.n > FEEL_ARGS_MAX) {
                feel_parse_fail(p, FEEL_E_LIMIT,
                                "more than %d arguments at column %u",
                                FEEL_ARGS_MAX, n->column);
                goto fail;
            }
            if (p->tok.kind != T_COMMA) {
                break;
            }
            if (feel_lex_next(p) != 0) {
                goto fail;
            }
        }
    }
    if (feel_parse_expect(p, T_RP, "',' or ')'") != 0) {
        goto fail;
    }
    n->fn = feel_fn_find(n->name, args.n);
    if (args.n > 0) {
        n = feel_node_kids(p, n, (struct feel_node *const *)args.v, args.n);
    }
    feel_vec_free(&args);
    return n;
fail:
    feel_vec_free(&args);
    return NULL;
}

/* [e, e, ...] after '[' was consumed, with first (may be NULL) already
 * parsed. */
static struct feel_node *feel_parse_list_rest(struct feel_parser *p,
                                              unsigned column,
                                              struct feel_node *first)
{
    struct feel_vec items = {0};
    struct feel_node *n = NULL;

    if (first == NULL && p->tok.kind != T_RB) {
        first = feel_parse_expr(p);
        if (first == NULL) {
            return NULL;
        }
    }
    if (first != NULL) {
        if (feel_vec_push(p, &items, first) != 0) {
            goto out;
        }
        while (p->tok.kind == T_COMMA) {
            struct feel_node *e;
            if (feel_lex_next(p) != 0 || (e = feel_parse_expr(p)) == NULL ||
                feel_vec_push(p, &items, e) != 0) {
                goto out;
            }
        }
    }
    if (feel_parse_expect(p, T_RB, "',' or ']'") == 0) {
        n = feel_node_from_vec(p, FEEL_N_LIST, column, &items);
    }
out:
    feel_vec_free(&items);
    return n;
}

/* {key: e, "key": e, ...} with the current token '{'. */
static struct feel_node *feel_parse_context(struct feel_parser *p)
{
    unsigned column = p->tok.column;
    struct feel_vec keys = {0}, vals = {0};
    struct feel_node *n = NULL;

    if (feel_lex_next(p) != 0) {
        return NULL;
    }
    while (p->tok.kind != T_RC) {
        const char *key;
        unsigned kcol = p->tok.column;
        struct feel_node *v;
        if (p->tok.kind == T_NAME && !p->tok.call) {
            key = p->tok.name;
        } else if (p->tok.kind == T_STR) {
            key = json_string_value(p->tok.value);
            if (strlen(key) != json_string_length(p->tok.value)) {
                feel_parse_unexpected(p, "a context key");
                goto out;
            }
        } else {
            feel_parse_unexpected(p, "a context key");
            goto out;
        }
        for (size_t i = 0; i < keys.n; i++) {
            if (strcmp(keys.v[i], key) == 0) {
                feel_parse_fail(p, FEEL_E_SYNTAX,
                                "duplicate context key '%s' at column %u", key,
                                kcol);
                goto out;
            }
        }
        if (feel_vec_push(p, &keys, (void *)key) != 0 ||
            feel_lex_next(p) != 0 ||
            feel_parse_expect(p, T_COLON, "':'") != 0 ||
            (v = feel_parse_expr(p)) == NULL ||
            feel_vec_push(p, &vals, v) != 0) {
            goto out;
        }
        if (p->tok.kind != T_COMMA) {
            break;
        }
        if (feel_lex_next(p) != 0) {
            goto out;
        }
    }
    if (feel_parse_expect(p, T_RC, "',' or '}'") != 0) {
        goto out;
    }
    n = feel_node_from_vec(p, FEEL_N_CONTEXT, column, &vals);
    if (n != NULL && keys.n > 0) {
        n->names = feel_arena_alloc(p->expr, keys.n * sizeof(*n->names));
        if (n->names == NULL) {
            feel_parse_nomem(p);
            n = NULL;
        } else {
            for (size_t i = 0; i < keys.n; i++) {
                n->names[i] = keys.v[i];
            }
        }
    }
out:
    feel_vec_free(&keys);
    feel_vec_free(&vals);
    return n;
}

/* for/some/every: `kw name in domain (, name in domain)* kw2 body`. A
 * domain of a `for` may be a range a..b. */
static struct feel_node *feel_parse_iteration(struct feel_parser *p)
{
    enum feel_tok_kind kw = p->tok.kind;
    enum feel_kind kind = kw == T_FOR    ? FEEL_N_FOR
                          : kw == T_SOME ? FEEL_N_SOME
                                         : FEEL_N_EVERY;
    enum feel_tok_kind kw2 = kw == T_FOR ? T_RETURN : T_SATISFIES;
    unsigned column = p->tok.column;
    size_t bound0 = p->bound.n;
    struct feel_vec names = {0}, kids = {0};
    struct feel_node *n = NULL, *body;

    if (feel_lex_next(p) != 0) {
        goto out;
    }
    for (;;) {
        struct feel_node *dom;
        unsigned dcol;
        if (p->tok.kind != T_NAME || p->tok.call) {
            feel_parse_unexpected(p, "a variable name");
            goto out;
        }
        if (names.n == FEEL_BIND_MAX) {
            feel_parse_fail(p, FEEL_E_LIMIT,
                            "more than %d variables at column %u",
                            FEEL_BIND_MAX, p->tok.column);
            goto out;
        }
        if (feel_vec_push(p, &names, (void *)p->tok.name) != 0 ||
            feel_lex_next(p) != 0 || feel_parse_expect(p, T_IN, "'in'") != 0) {
            goto out;
        }
        dcol = p->tok.column;
        if ((dom = feel_parse_expr(p)) == NULL) {
            goto out;
        }
        if (p->tok.kind == T_DOTDOT) {
            struct feel_node *hi;
            if (feel_lex_next(p) != 0 || (hi = feel_parse_expr(p)) == NULL ||
                (dom = feel_node_make(p, FEEL_N_RANGE, dcol, dom, hi, NULL)) ==
                    NULL) {
                goto out;
            }
        }
        if (feel_vec_push(p, &kids, dom) != 0 ||
            feel_vec_push(p, &p->bound, names.v[names.n - 1]) != 0) {
            goto out;
        }
        if (p->tok.kind != T_COMMA) {
            break;
        }
        if (feel_lex_next(p) != 0) {
            goto out;
        }
    }
    if (feel_parse_expect(p, kw2, kw == T_FOR ? "'return'" : "'satisfies'") !=
            0 ||
        (body = feel_parse_expr(p)) == NULL ||
        feel_vec_push(p, &kids, body) != 0) {
        goto out;
    }
    n = feel_node_from_vec(p, kind, column, &kids);
    if (n != NULL) {
        n->names = feel_arena_alloc(p->expr, names.n * sizeof(*n->names));
        if (n->names == NULL) {
            feel_parse_nomem(p);
            n = NULL;
        } else {
            for (size_t i = 0; i < names.n; i++) {
                n->names[i] = names.v[i];
            }
        }
    }
out:
    p->bound.n = bound0;
    feel_vec_free(&names);
    feel_vec_free(&kids);
    return n;
}

static struct feel_node *feel_parse_if(struct feel_parser *p)
{
    unsigned column = p->tok.column;
    struct feel_node *c, *a, *b;

    if (feel_lex_next(p) != 0 || (c = feel_parse_expr(p)) == NULL ||
        feel_parse_expect(p, T_THEN, "'then'") != 0 ||
        (a = feel_parse_expr(p)) == NULL ||
        feel_parse_expect(p, T_ELSE, "'else'") != 0 ||
        (b = feel_parse_expr(p)) == NULL) {
        return NULL;
    }
    return feel_node_make(p, FEEL_N_IF, column, c, a, b);
}

static struct feel_node *feel_parse_primary(struct feel_parser *p)
{
    struct feel_node *n;
    unsigned column = p->tok.column;

    switch (p->tok.kind) {
    case T_NUM:
    case T_STR:
    case T_TRUE:
    case T_FALSE:
    case T_NULL:
        if ((n = feel_node_new(p, FEEL_N_CONST, column)) == NULL) {
            return NULL;
        }
        n->value = p->tok.kind == T_TRUE    ? json_true()
                   : p->tok.kind == T_FALSE ? json_false()
                   : p->tok.kind == T_NULL  ? json_null()
                                            : p->tok.value;
        return feel_lex_next(p) == 0 ? n : NULL;
    case T_NAME:
        if (p->tok.call) {
            return feel_parse_call(p);
        }
        if ((n = feel_node_new(p, FEEL_N_NAME, column)) == NULL) {
            return NULL;
        }
        n->name = p->tok.name;
        if (!feel_name_is_bound(p, n->name) &&
            feel_vec_push(p, &p->names, (void *)n->name) != 0) {
            return NULL;
        }
        return feel_lex_next(p) == 0 ? n : NULL;
    case T_LP:
        if (feel_lex_next(p) != 0 || (n = feel_parse_expr(p)) == NULL ||
            feel_parse_expect(p, T_RP, "')'") != 0) {
            return NULL;
        }
        return n;
    case T_LB:
        return feel_lex_next(p) == 0 ? feel_parse_list_rest(p, column, NULL)
                                     : NULL;
    case T_LC:
        return feel_parse_context(p);
    case T_IF:
    case T_FOR:
    case T_SOME:
    case T_EVERY:
        return feel_parse_expr(p);
    default:
        feel_parse_unexpected(p, NULL);
        return NULL;
    }
}

/* primary (.name | [filter])* */
static struct feel_node *feel_parse_postfix(struct feel_parser *p)
{
    struct feel_node *n = feel_parse_primary(p);

    while (n != NULL) {
        unsigned column = p->tok.column;
        if (p->tok.kind == T_DOT) {
            struct feel_node *m;
            if (feel_lex_next(p) != 0) {
                return NULL;
            }
            if (p->tok.kind != T_NAME || p->tok.call) {
                feel_parse_unexpected(p, "a member name after '.'");
                return NULL;
            }
            if ((m = feel_node_make(p, FEEL_N_MEMBER, column, n, NULL, NULL)) ==
                NULL) {
                return NULL;
            }
            m->name = p->tok.name;
            n = feel_lex_next(p) == 0 ? m : NULL;
        } else if (p->tok.kind == T_LB && p->nest != p->no_filter) {
            struct feel_node *f;
            if (feel_lex_next(p) != 0 || (f = feel_parse_expr(p)) == NULL ||
                feel_parse_expect(p, T_RB, "']'") != 0) {
                return NULL;
            }
            n = feel_node_make(p, FEEL_N_FILTER, column, n, f, NULL);
        } else {
            break;
        }
    }
    return n;
}

/* -* postfix */
static struct feel_node *feel_parse_unary(struct feel_parser *p)
{
    unsigned cols[FEEL_DEPTH_MAX + 1];
    size_t negs = 0;
    struct feel_node *n;

    while (p->tok.kind == T_MINUS) {
        if (negs == FEEL_DEPTH_MAX) {
            feel_parse_fail(p, FEEL_E_LIMIT,
                            "more than %d unary minus signs at column %u",
                            FEEL_DEPTH_MAX, p->tok.column);
            return NULL;
        }
        cols[negs++] = p->tok.column;
        if (feel_lex_next(p) != 0) {
            return NULL;
        }
    }
    n = feel_parse_postfix(p);
    while (n != NULL && negs > 0) {
        negs--;
        n = feel_node_make(p, FEEL_N_NEG, cols[negs], n, NULL, NULL);
    }
    return n;
}

/* A left-associative chain of one precedence level as one FEEL_N_ARITH
 * node: next (op next)*, for the operators tok1/tok2 (tok2 may equal
 * tok1). */
static struct feel_node *
feel_parse_chain(struct feel_parser *p,
                 struct feel_node *(*next)(struct feel_parser *),
                 enum feel_tok_kind tok1, enum feel_op op1,
                 enum feel_tok_kind tok2, enum feel_op op2)
{
    struct feel_vec kids = {0};
    unsigned char *ops = NULL;
    size_t nops = 0, cap = 0;
    unsigned column = p->tok.column;
    struct feel_node *first = next(p), *n = NULL;

    if (first == NULL) {
        return NULL;
    }
    if (p->tok.kind != tok1 && p->tok.kind != tok2) {
        return first;
    }
    if (feel_vec_push(p, &kids, first) != 0) {
        goto out;
    }
    while (p->tok.kind == tok1 || p->tok.kind == tok2) {
        struct feel_node *e;
        if (nops == cap) {
            unsigned char *nb;
            cap = cap == 0 ? 8 : cap * 2;
            nb = realloc(ops, cap);
            if (nb == NULL) {
                feel_parse_nomem(p);
                goto out;
            }
            ops = nb;
        }
        ops[nops++] = (unsigned char)(p->tok.kind == tok1 ? op1 : op2);
        if (feel_lex_next(p) != 0 || (e = next(p)) == NULL ||
            feel_vec_push(p, &kids, e) != 0) {
            goto out;
        }
    }
    assert(kids.n == nops + 1);
    n = feel_node_from_vec(p, FEEL_N_ARITH, column, &kids);
    if (n != NULL) {
        n->ops = feel_arena_alloc(p->expr, nops);
        if (n->ops == NULL) {
            feel_parse_nomem(p);
            n = NULL;
        } else {
            memcpy(n->ops, ops, nops);
        }
    }
out:
    free(ops);
    feel_vec_free(&kids);
    return n;
}

static struct feel_node *feel_parse_pow(struct feel_parser *p)
{
    return feel_parse_chain(p, feel_parse_unary, T_POW, FEEL_OP_POW, T_POW,
                            FEEL_OP_POW);
}

static struct feel_node *feel_parse_mul(struct feel_parser *p)
{
    return feel_parse_chain(p, feel_parse_pow, T_STAR, FEEL_OP_MUL, T_SLASH,
                            FEEL_OP_DIV);
}

static struct feel_node *feel_parse_add(struct feel_parser *p)
{
    return feel_parse_chain(p, feel_parse_mul, T_PLUS, FEEL_OP_ADD, T_MINUS,
                            FEEL_OP_SUB);
}

static int feel_tok_cmp_op(enum feel_tok_kind k)
{
    switch (k) {
    case T_EQ:
        return FEEL_OP_EQ;
    case T_NE:
        return FEEL_OP_NE;
    case T_LT:
        return FEEL_OP_LT;
    case T_LE:
        return FEEL_OP_LE;
    case T_GT:
        return FEEL_OP_GT;
    case T_GE:
        return FEEL_OP_GE;
    default:
        return -1;
    }
}

/* The closing bracket of an interval, after its upper bound. */
static struct feel_node *feel_parse_interval_end(struct feel_parser *p,
                                                 unsigned column, int open_lo,
                                                 struct feel_node *lo)
{
    struct feel_node *hi, *n;
    int flags = open_lo ? FEEL_IV_OPEN_LO : 0;

    unsigned saved = p->no_filter;

    assert(p->tok.kind == T_DOTDOT);
    if (feel_lex_next(p) != 0) {
        return NULL;
    }
    /* in ]a..b[ the '[' after b closes the interval, it is no filter */
    p->no_filter = p->nest + 1;
    hi = feel_parse_expr(p);
    p->no_filter = saved;
    if (hi == NULL) {
        return NULL;
    }
    if (p->tok.kind == T_RP || p->tok.kind == T_LB) {
        flags |= FEEL_IV_OPEN_HI;
    } else if (p->tok.kind != T_RB) {
        feel_parse_unexpected(p, "']', ')' or '[' closing the interval");
        return NULL;
    }
    if (feel_lex_next(p) != 0 || (n = feel_node_make(p, FEEL_N_INTERVAL, column,
                                                     lo, hi, NULL)) == NULL) {
        return NULL;
    }
    n->op = flags;
    return n;
}

/* One positive unary test: `< e`, `<= e`, `> e`, `>= e`, an interval
 * `[a..b]` / `(a..b)` / `]a..b[`, or an expression (equal to it, or an
 * element of it when it is a list). */
static struct feel_node *feel_parse_test(struct feel_parser *p)
{
    unsigned column = p->tok.column;
    int op = feel_tok_cmp_op(p->tok.kind);
    enum feel_tok_kind open = p->tok.kind;
    struct feel_node *e, *n;

    if (op == FEEL_OP_LT || op == FEEL_OP_LE || op == FEEL_OP_GT ||
        op == FEEL_OP_GE) {
        if (feel_lex_next(p) != 0 || (e = feel_parse_add(p)) == NULL ||
            (n = feel_node_make(p, FEEL_N_TEST_CMP, column, e, NULL, NULL)) ==
                NULL) {
            return NULL;
        }
        n->op = op;
        return n;
    }
    if (open != T_LB && open != T_RB && open != T_LP) {
        return feel_parse_add(p);
    }
    if (feel_lex_next(p) != 0) {
        return NULL;
    }
    if (open == T_LB && p->tok.kind == T_RB) { /* [] */
        return feel_parse_list_rest(p, column, NULL);
    }
    if ((e = feel_parse_expr(p)) == NULL) {
        return NULL;
    }
    if (p->tok.kind == T_DOTDOT) {
        return feel_parse_interval_end(p, column, open != T_LB, e);
    }
    if (open == T_LB) {
        return feel_parse_list_rest(p, column, e);
    }
    if (open == T_RB) {
        feel_parse_unexpected(p, "'..' in the interval");
        return NULL;
    }
    return feel_parse_expect(p, T_RP, "')'") == 0 ? e : NULL;
}

/* The right side of `in`: one test, or `(test, test, ...)`, whose tests
 * are pushed on tests. */
static int feel_parse_in_tests(struct feel_parser *p, struct feel_vec *tests)
{
    unsigned column = p->tok.column;
    struct feel_node *t;

    if (p->tok.kind != T_LP) {
        t = feel_parse_test(p);
        return t == NULL ? -1 : feel_vec_push(p, tests, t);
    }
    if (feel_lex_next(p) != 0) {
        return -1;
    }
    if (feel_tok_cmp_op(p->tok.kind) < 0 && p->tok.kind != T_LB &&
        p->tok.kind != T_RB) {
        /* maybe an open interval (a..b) */
        if ((t = feel_parse_expr(p)) == NULL) {
            return -1;
        }
        if (p->tok.kind == T_DOTDOT) {
            t = feel_parse_interval_end(p, column, 1, t);
            return t == NULL ? -1 : feel_vec_push(p, tests, t);
        }
    } else if ((t = feel_parse_test(p)) == NULL) {
        return -1;
    }
    if (feel_vec_push(p, tests, t) != 0) {
        return -1;
    }
    while (p->tok.kind == T_COMMA) {
        if (feel_lex_next(p) != 0 || (t = feel_parse_test(p)) == NULL ||
            feel_vec_push(p, tests, t) != 0) {
            return -1;
        }
    }
    return feel_parse_expect(p, T_RP, "',' or ')'");
}

/* add ((= | != | < | <= | > | >=) add | between add and add | in tests)* */
static struct feel_node *feel_parse_cmp(struct feel_parser *p)
{
    unsigned column = p->tok.column;
    struct feel_node *n = feel_parse_add(p);

    while (n != NULL) {
        int op = feel_tok_cmp_op(p->tok.kind);
        if (op >= 0) {
            struct feel_node *r;
            if (feel_lex_next(p) != 0 || (r = feel_parse_add(p)) == NULL ||
                (n = feel_node_make(p, FEEL_N_CMP, column, n, r, NULL)) ==
                    NULL) {
                return NULL;
            }
            n->op = op;
        } else if (p->tok.kind == T_BETWEEN) {
            struct feel_node *lo, *hi;
            if (feel_lex_next(p) != 0 || (lo = feel_parse_add(p)) == NULL ||
                feel_parse_expect(p, T_AND, "'and'") != 0 ||
                (hi = feel_parse_add(p)) == NULL) {
                return NULL;
            }
            n = feel_node_make(p, FEEL_N_BETWEEN, column, n, lo, hi);
        } else if (p->tok.kind == T_IN) {
            struct feel_vec kids = {0};
            if (feel_lex_next(p) != 0 || feel_vec_push(p, &kids, n) != 0 ||
                feel_parse_in_tests(p, &kids) != 0) {
                feel_vec_free(&kids);
                return NULL;
            }
            n = feel_node_from_vec(p, FEEL_N_IN, column, &kids);
            feel_vec_free(&kids);
        } else {
            break;
        }
    }
    return n;
}

/* next (kw next)* as one n-ary node of kind. */
static struct feel_node *
feel_parse_logic(struct feel_parser *p,
                 struct feel_node *(*next)(struct feel_parser *),
                 enum feel_tok_kind kw, enum feel_kind kind)
{
    unsigned column = p->tok.column;
    struct feel_node *first = next(p), *n = NULL;
    struct feel_vec kids = {0};

    if (first == NULL || p->tok.kind != kw) {
        return first;
    }
    if (feel_vec_push(p, &kids, first) != 0) {
        goto out;
    }
    while (p->tok.kind == kw) {
        struct feel_node *e;
        if (feel_lex_next(p) != 0 || (e = next(p)) == NULL ||
            feel_vec_push(p, &kids, e) != 0) {
            goto out;
        }
    }
    n = feel_node_from_vec(p, kind, column, &kids);
out:
    feel_vec_free(&kids);
    return n;
}

static struct feel_node *feel_parse_and(struct feel_parser *p)
{
    return feel_parse_logic(p, feel_parse_cmp, T_AND, FEEL_N_AND);
}

static struct feel_node *feel_parse_or(struct feel_parser *p)
{
    return feel_parse_logic(p, feel_parse_and, T_OR, FEEL_N_OR);
}

/* Every nested parse goes through here, so p->nest bounds the recursion of
 * the whole parser. */
static struct feel_node *feel_parse_expr(struct feel_parser *p)
{
    struct feel_node *n;

    if (p->nest >= FEEL_DEPTH_MAX) {
        feel_parse_fail(p, FEEL_E_LIMIT,
                        "expression nested deeper than %d levels at column %u",
                        FEEL_DEPTH_MAX, p->tok.column);
        return NULL;
    }
    p->nest++;
    switch (p->tok.kind) {
    case T_IF:
        n = feel_parse_if(p);
        break;
    case T_FOR:
    case T_SOME:
    case T_EVERY:
        n = feel_parse_iteration(p);
        break;
    default:
        n = feel_parse_or(p);
        break;
    }
    p->nest--;
    assert(n != NULL || p->rc != 0);
    return n;
}

/* ------------------------------------------------------------------ */
/* Public API                                                           */
/* ------------------------------------------------------------------ */

static int feel_strcmp_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts the names read and keeps each once, in the arena. */
static int feel_parse_names(struct feel_parser *p)
{
    struct feel_expr *expr = p->expr;
    size_t k = 0;

    if (p->names.n == 0) {
        return 0;
    }
    qsort(p->names.v, p->names.n, sizeof(p->names.v[0]), feel_strcmp_ptr);
    expr->free_names =
        feel_arena_alloc(expr, p->names.n * sizeof(*expr->free_names));
    if (expr->free_names == NULL) {
        feel_parse_nomem(p);
        return -1;
    }
    for (size_t i = 0; i < p->names.n; i++) {
        if (k == 0 || strcmp(expr->free_names[k - 1], p->names.v[i]) != 0) {
            expr->free_names[k++] = p->names.v[i];
        }
    }
    expr->nfree_names = k;
    return 0;
}

int feel_parse(const char *text, struct feel_expr **out, char *err,
               size_t errlen)
{
    struct feel_parser p = {0};
    size_t len;
    int rc;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (out == NULL) {
        return FEEL_E_SYNTAX;
    }
    *out = NULL;
    p.err = err;
    p.errlen = errlen;
    if (text == NULL) {
        feel_parse_fail(&p, FEEL_E_SYNTAX, "no expression text");
        return p.rc;
    }
    len = strnlen(text, (size_t)FEEL_TEXT_MAX + 1);
    if (len > FEEL_TEXT_MAX) {
        feel_parse_fail(&p, FEEL_E_LIMIT, "expression longer than %d bytes",
                        FEEL_TEXT_MAX);
        return p.rc;
    }
    p.expr = calloc(1, sizeof(*p.expr));
    if (p.expr == NULL || (p.expr->consts = json_array()) == NULL) {
        free(p.expr);
        feel_parse_nomem(&p);
        return p.rc;
    }
    p.text = text;
    p.len = len;
    p.col = 1;
    if (len > 0 && text[0] == '=') {
        feel_lex_advance(&p, 1);
    }
    if (feel_lex_next(&p) == 0) {
        if (p.tok.kind == T_EOF) {
            feel_parse_fail(&p, FEEL_E_SYNTAX, "empty expression");
        } else if ((p.expr->root = feel_parse_expr(&p)) != NULL &&
                   p.tok.kind != T_EOF) {
            feel_parse_unexpected(&p, NULL);
        }
    }
    if (p.rc == 0) {
        (void)feel_parse_names(&p);
    }
    feel_vec_free(&p.bound);
    feel_vec_free(&p.names);
    rc = p.rc;
    if (rc != 0) {
        feel_expr_free(p.expr);
        return rc;
    }
    assert(p.nest == 0);
    assert(p.expr->root != NULL);
    assert(p.expr->root->depth <= FEEL_DEPTH_MAX);
    *out = p.expr;
    return 0;
}

void feel_expr_free(struct feel_expr *expr)
{
    struct feel_chunk *ch;

    if (expr == NULL) {
        return;
    }
    ch = expr->chunks;
    while (ch != NULL) {
        struct feel_chunk *next = ch->next;
        free(ch);
        ch = next;
    }
    json_decref(expr->consts);
    free(expr);
}

size_t feel_expr_names(const struct feel_expr *expr, const char **names,
                       size_t max)
{
    assert(expr != NULL);
    if (names != NULL) {
        for (size_t i = 0; i < expr->nfree_names && i < max; i++) {
            names[i] = expr->free_names[i];
        }
    }
    return expr->nfree_names;
}
