/* The common event of each API flavor, recognised without building any Python object.
 *
 * Nearly every event of a stream is one token of text, e.g. OpenAI chat's
 *     {"id":"…","object":"chat.completion.chunk",…,"choices":[{"index":0,"delta":{"content":" the"},
 *      "finish_reason":null}]}
 * plain_event(kind, …) says whether ``data`` is such an event of that flavor exactly when the
 * flavor's Python ``plain_content(orjson.loads(data))`` returns text (llm_locust/flavors/), and
 * then appends that text. It is conservative: anything it is not sure of (invalid or unusual JSON,
 * escaped keys, surrogate escapes, exponents, deep nesting, a key of interest given twice, a falsy
 * value other than null or "") makes it answer 0, and the event goes to the Python path, which judges
 * it. It never answers 1 where Python would not. tests/unit/test_plain_chunk.py holds the two equal
 * on generated events of every flavor.
 */
#include "_json_scan.h"

typedef struct {
    Buf *text;
    Py_ssize_t text_len; /* where this event's text starts in text */
} Ctx;

/* A non-empty string, its text appended to the event's text. */
static int text_value(Cur *c, void *ctx) {
    js_ws(c);
    const unsigned char *s, *e;
    int escaped;
    if (c->p >= c->end || *c->p != '"' || js_string(c, &s, &e, &escaped) < 0 || s == e) return -1;
    Ctx *x = ctx;
    return escaped ? js_unescape(s, e, x->text) : buf_add(x->text, (const char *)s, e - s);
}

/* A string without escapes equal to ``want`` (n bytes). */
static int exact_string(Cur *c, const char *want, size_t n) {
    js_ws(c);
    const unsigned char *s, *e;
    int escaped;
    if (c->p >= c->end || *c->p != '"' || js_string(c, &s, &e, &escaped) < 0 || escaped) return -1;
    return (size_t)(e - s) == n && memcmp(s, want, n) == 0 ? 0 : -1;
}

#define EXACT(c, lit) exact_string((c), lit, sizeof(lit) - 1)

/* An "object" member that must not say "error" (a string without escapes, or any other value). */
static int not_error_object(Cur *c) {
    js_ws(c);
    if (c->p < c->end && *c->p == '"') {
        const unsigned char *s, *e;
        int escaped;
        if (js_string(c, &s, &e, &escaped) < 0 || escaped) return -1;
        return e - s == 5 && memcmp(s, "error", 5) == 0 ? -1 : 0;
    }
    return js_skip_value(c, 1);
}

/* One array of exactly one object, each member of which goes to fn; ``need`` bits must be seen. */
static int one_choice(Cur *c, MemberFn fn, unsigned need, void *ctx) {
    js_ws(c);
    if (c->p >= c->end || *c->p != '[') return -1;
    c->p++;
    unsigned seen = 0;
    if (js_object(c, fn, &seen, ctx) < 0 || (seen & need) != need) return -1;
    js_ws(c);
    if (c->p >= c->end || *c->p != ']') return -1;
    c->p++;
    return 0;
}

/* ---- OpenAI chat and completions: one choice with text, no finish, usage, timings or error ---- */

enum { D_CONTENT = 1, D_REASONING_CONTENT = 2, D_REASONING = 4 };

static int chat_delta_member(Cur *c, const unsigned char *key, Py_ssize_t key_len, unsigned *seen, void *ctx) {
    if (KEY("content")) return js_once(seen, D_CONTENT) < 0 ? -1 : text_value(c, ctx);
    if (KEY("reasoning_content")) return js_once(seen, D_REASONING_CONTENT) < 0 ? -1 : js_null_or_empty(c, 1);
    if (KEY("reasoning")) return js_once(seen, D_REASONING) < 0 ? -1 : js_null_or_empty(c, 1);
    return js_skip_value(c, 3);
}

enum { C_FINISH = 1, C_TEXT = 2 };

static int chat_choice_member(Cur *c, const unsigned char *key, Py_ssize_t key_len, unsigned *seen, void *ctx) {
    if (KEY("finish_reason")) return js_once(seen, C_FINISH) < 0 ? -1 : js_null_or_empty(c, 0);
    if (KEY("delta")) {
        if (js_once(seen, C_TEXT) < 0) return -1;
        unsigned delta_seen = 0;
        if (js_object(c, chat_delta_member, &delta_seen, ctx) < 0) return -1;
        return delta_seen & D_CONTENT ? 0 : -1;
    }
    return js_skip_value(c, 2);
}

static int completion_choice_member(Cur *c, const unsigned char *key, Py_ssize_t key_len, unsigned *seen,
                                    void *ctx) {
    if (KEY("finish_reason")) return js_once(seen, C_FINISH) < 0 ? -1 : js_null_or_empty(c, 0);
    if (KEY("text")) return js_once(seen, C_TEXT) < 0 ? -1 : text_value(c, ctx);
    return js_skip_value(c, 2);
}

enum { T_CHOICES = 1, T_ERROR = 2, T_USAGE = 4, T_TIMINGS = 8, T_OBJECT = 16 };

static int openai_top(Cur *c, const unsigned char *key, Py_ssize_t key_len, unsigned *seen, void *ctx,
                      MemberFn choice) {
    if (KEY("choices")) return js_once(seen, T_CHOICES) < 0 ? -1 : one_choice(c, choice, C_TEXT, ctx);
    if (KEY("error")) return js_once(seen, T_ERROR) < 0 ? -1 : js_null_or_empty(c, 0);
    if (KEY("usage")) return js_once(seen, T_USAGE) < 0 ? -1 : js_null_or_empty(c, 0);
    if (KEY("timings")) return js_once(seen, T_TIMINGS) < 0 ? -1 : js_null_or_empty(c, 0);
    if (KEY("object")) return js_once(seen, T_OBJECT) < 0 ? -1 : not_error_object(c);
    return js_skip_value(c, 1);
}

static int chat_top(Cur *c, const unsigned char *key, Py_ssize_t key_len, unsigned *seen, void *ctx) {
    return openai_top(c, key, key_len, seen, ctx, chat_choice_member);
}

static int completion_top(Cur *c, const unsigned char *key, Py_ssize_t key_len, unsigned *seen, void *ctx) {
    return openai_top(c, key, key_len, seen, ctx, completion_choice_member);
}

/* ---- OpenAI Responses: {"type":"response.output_text.delta", "delta":"…", …} ------------------ */

enum { R_TYPE = 1, R_DELTA = 2 };

static int responses_top(Cur *c, const unsigned char *key, Py_ssize_t key_len, unsigned *seen, void *ctx) {
    if (KEY("type")) return js_once(seen, R_TYPE) < 0 ? -1 : EXACT(c, "response.output_text.delta");
    if (KEY("delta")) return js_once(seen, R_DELTA) < 0 ? -1 : text_value(c, ctx);
    return js_skip_value(c, 1);
}

/* ---- Anthropic Messages: {"type":"content_block_delta","delta":{"type":"text_delta","text":"…"}} */

static int anthropic_delta(Cur *c, const unsigned char *key, Py_ssize_t key_len, unsigned *seen, void *ctx) {
    if (KEY("type")) return js_once(seen, R_TYPE) < 0 ? -1 : EXACT(c, "text_delta");
    if (KEY("text")) return js_once(seen, R_DELTA) < 0 ? -1 : text_value(c, ctx);
    return js_skip_value(c, 2);
}

static int anthropic_top(Cur *c, const unsigned char *key, Py_ssize_t key_len, unsigned *seen, void *ctx) {
    if (KEY("type")) return js_once(seen, R_TYPE) < 0 ? -1 : EXACT(c, "content_block_delta");
    if (KEY("delta")) {
        if (js_once(seen, R_DELTA) < 0) return -1;
        unsigned delta_seen = 0;
        if (js_object(c, anthropic_delta, &delta_seen, ctx) < 0) return -1;
        return delta_seen == (R_TYPE | R_DELTA) ? 0 : -1;
    }
    return js_skip_value(c, 1);
}

/* ---- Ollama: a line with text that is not the last (done) one and carries no error -------------- */

enum { O_TEXT = 1, O_THINKING = 2, O_ERROR = 4, O_DONE = 8 };

/* "done": false or null (the last line says true). */
static int not_done(Cur *c) {
    js_ws(c);
    if (c->p < c->end && *c->p == 'f') return js_literal(c, "false", 5);
    return js_null_or_empty(c, 0);
}

static int ollama_message(Cur *c, const unsigned char *key, Py_ssize_t key_len, unsigned *seen, void *ctx) {
    if (KEY("content")) return js_once(seen, O_TEXT) < 0 ? -1 : text_value(c, ctx);
    if (KEY("thinking")) return js_once(seen, O_THINKING) < 0 ? -1 : js_null_or_empty(c, 1);
    return js_skip_value(c, 2);
}

static int ollama_chat_top(Cur *c, const unsigned char *key, Py_ssize_t key_len, unsigned *seen, void *ctx) {
    if (KEY("message")) {
        if (js_once(seen, O_TEXT) < 0) return -1;
        unsigned message_seen = 0;
        if (js_object(c, ollama_message, &message_seen, ctx) < 0) return -1;
        return message_seen & O_TEXT ? 0 : -1;
    }
    if (KEY("error")) return js_once(seen, O_ERROR) < 0 ? -1 : js_null_or_empty(c, 0);
    if (KEY("done")) return js_once(seen, O_DONE) < 0 ? -1 : not_done(c);
    return js_skip_value(c, 1);
}

static int ollama_generate_top(Cur *c, const unsigned char *key, Py_ssize_t key_len, unsigned *seen,
                               void *ctx) {
    if (KEY("response")) return js_once(seen, O_TEXT) < 0 ? -1 : text_value(c, ctx);
    if (KEY("thinking")) return js_once(seen, O_THINKING) < 0 ? -1 : js_null_or_empty(c, 1);
    if (KEY("error")) return js_once(seen, O_ERROR) < 0 ? -1 : js_null_or_empty(c, 0);
    if (KEY("done")) return js_once(seen, O_DONE) < 0 ? -1 : not_done(c);
    return js_skip_value(c, 1);
}

/* ---- the scanners by kind -------------------------------------------------------------------- */

typedef struct {
    const char *name; /* the flavor's --api name */
    MemberFn top;
    unsigned need; /* the top-level members that must be there */
} Scanner;

static const Scanner SCANNERS[] = {
    [PLAIN_OPENAI_CHAT] = {"openai-chat", chat_top, T_CHOICES},
    [PLAIN_OPENAI_COMPLETIONS] = {"openai-completions", completion_top, T_CHOICES},
    [PLAIN_OPENAI_RESPONSES] = {"openai-responses", responses_top, R_TYPE | R_DELTA},
    [PLAIN_ANTHROPIC_MESSAGES] = {"anthropic-messages", anthropic_top, R_TYPE | R_DELTA},
    [PLAIN_OLLAMA_CHAT] = {"ollama-chat", ollama_chat_top, O_TEXT},
    [PLAIN_OLLAMA_GENERATE] = {"ollama-generate", ollama_generate_top, O_TEXT},
};

int plain_kind(const char *name) {
    for (int k = 1; k < PLAIN_KINDS; k++)
        if (strcmp(SCANNERS[k].name, name) == 0) return k;
    return -1;
}

int plain_event(int kind, const char *data, Py_ssize_t n, Buf *text) {
    if (kind <= PLAIN_NONE || kind >= PLAIN_KINDS) return 0;
    const Scanner *scanner = &SCANNERS[kind];
    Cur c = {(const unsigned char *)data, (const unsigned char *)data + n};
    Ctx ctx = {text, text->len};
    if (!js_utf8_ok(c.p, c.end)) return 0;
    unsigned seen = 0;
    int ok = js_object(&c, scanner->top, &seen, &ctx) == 0 && (seen & scanner->need) == scanner->need;
    if (ok) {
        js_ws(&c);
        ok = c.p == c.end;
    }
    if (!ok) {
        text->len = ctx.text_len; /* what a member appended before the verdict */
        return PyErr_Occurred() ? -1 : 0;
    }
    return 1;
}
