/* A strict, allocation-free walk over one JSON text: the primitives the plain-event scanners
 * (_plain_chunk.c) are built from. Each answers -1 for anything it is not sure of (see
 * _plain_chunk.c); none builds a Python object. */
#include "_json_scan.h"

void js_ws(Cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int js_hex4(const unsigned char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char h = p[i];
        int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Whether the whole payload is valid UTF-8 (Python decodes the event with "replace": invalid
 * bytes would change the text, so such events go to Python). */
int js_utf8_ok(const unsigned char *p, const unsigned char *end) {
    while (p < end) {
        unsigned char b = *p;
        if (b < 0x80) {
            p++;
            continue;
        }
        int n;
        unsigned int cp;
        if (b >= 0xC2 && b <= 0xDF) {
            n = 1;
            cp = b & 0x1F;
        } else if (b >= 0xE0 && b <= 0xEF) {
            n = 2;
            cp = b & 0x0F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            n = 3;
            cp = b & 0x07;
        } else {
            return 0;
        }
        if (end - p <= n) return 0;
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* A string at c->p (its opening quote). Sets [*s, *e) to its raw inside and *escaped. 0 or -1. */
int js_string(Cur *c, const unsigned char **s, const unsigned char **e, int *escaped) {
    c->p++;
    *s = c->p;
    *escaped = 0;
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        if (ch == '"') {
            *e = c->p++;
            return 0;
        }
        if (ch < 0x20) return -1;
        if (ch == '\\') {
            *escaped = 1;
            if (c->end - c->p < 2) return -1;
            switch (c->p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                c->p += 2;
                break;
            case 'u': {
                if (c->end - c->p < 6) return -1;
                int v = js_hex4(c->p + 2);
                if (v < 0 || (v >= 0xD800 && v <= 0xDFFF)) return -1;
                c->p += 6;
                break;
            }
            default:
                return -1;
            }
            continue;
        }
        c->p++;
    }
    return -1;
}

/* The text of a string whose raw inside is [s, e), appended to out (escapes decoded). */
int js_unescape(const unsigned char *s, const unsigned char *e, Buf *out) {
    while (s < e) {
        const unsigned char *bs = memchr(s, '\\', (size_t)(e - s));
        const unsigned char *stop = bs ? bs : e;
        if (stop > s && buf_add(out, (const char *)s, stop - s) < 0) return -1;
        if (bs == NULL) return 0;
        char one;
        switch (bs[1]) {
        case 'b': one = '\b'; break;
        case 'f': one = '\f'; break;
        case 'n': one = '\n'; break;
        case 'r': one = '\r'; break;
        case 't': one = '\t'; break;
        case 'u': {
            int v = js_hex4(bs + 2); /* checked by js_string(): no surrogates */
            char u[3];
            int n;
            if (v < 0x80) {
                u[0] = (char)v;
                n = 1;
            } else if (v < 0x800) {
                u[0] = (char)(0xC0 | (v >> 6));
                u[1] = (char)(0x80 | (v & 0x3F));
                n = 2;
            } else {
                u[0] = (char)(0xE0 | (v >> 12));
                u[1] = (char)(0x80 | ((v >> 6) & 0x3F));
                u[2] = (char)(0x80 | (v & 0x3F));
                n = 3;
            }
            if (buf_add(out, u, n) < 0) return -1;
            s = bs + 6;
            continue;
        }
        default: one = (char)bs[1]; /* " \ / */
        }
        if (buf_add(out, &one, 1) < 0) return -1;
        s = bs + 2;
    }
    return 0;
}

int js_number(Cur *c) {
    const unsigned char *p = c->p, *end = c->end;
    if (p < end && *p == '-') p++;
    const unsigned char *digits = p;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') p++;
    } else {
        return -1;
    }
    if (p - digits > MAX_INT_DIGITS) return -1;
    if (p < end && *p == '.') {
        p++;
        const unsigned char *frac = p;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p == frac || p - frac > MAX_INT_DIGITS) return -1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) return -1; /* not sure how every parser rounds these */
    c->p = p;
    return 0;
}

int js_literal(Cur *c, const char *word, size_t n) {
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return -1;
    c->p += n;
    return 0;
}


/* Members of an object or items of an array after its opening bracket, skipped. */
static int js_skip_container(Cur *c, int depth, int is_object) {
    unsigned char close = is_object ? '}' : ']';
    c->p++;
    js_ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return 0;
    }
    for (;;) {
        if (is_object) {
            const unsigned char *s, *e;
            int escaped;
            if (c->p >= c->end || *c->p != '"' || js_string(c, &s, &e, &escaped) < 0) return -1;
            js_ws(c);
            if (c->p >= c->end || *c->p != ':') return -1;
            c->p++;
        }
        if (js_skip_value(c, depth + 1) < 0) return -1;
        js_ws(c);
        if (c->p >= c->end) return -1;
        if (*c->p == close) {
            c->p++;
            return 0;
        }
        if (*c->p != ',') return -1;
        c->p++;
        js_ws(c);
    }
}

int js_skip_value(Cur *c, int depth) {
    if (depth > MAX_DEPTH) return -1;
    js_ws(c);
    if (c->p >= c->end) return -1;
    const unsigned char *s, *e;
    int escaped;
    switch (*c->p) {
    case '{': return js_skip_container(c, depth, 1);
    case '[': return js_skip_container(c, depth, 0);
    case '"': return js_string(c, &s, &e, &escaped);
    case 't': return js_literal(c, "true", 4);
    case 'f': return js_literal(c, "false", 5);
    case 'n': return js_literal(c, "null", 4);
    default: return js_number(c);
    }
}

/* A value that must be null, or (where allow_empty) null or "": what Python's falsy checks accept here. */
int js_null_or_empty(Cur *c, int allow_empty) {
    js_ws(c);
    if (c->p < c->end && *c->p == 'n') return js_literal(c, "null", 4);
    if (allow_empty && c->end - c->p >= 2 && c->p[0] == '"' && c->p[1] == '"') {
        c->p += 2;
        return 0;
    }
    return -1;
}


/* An object at c->p: each member's value is handled by fn (which skips what it does not need). */
int js_object(Cur *c, MemberFn fn, unsigned *seen, void *ctx) {
    js_ws(c);
    if (c->p >= c->end || *c->p != '{') return -1;
    c->p++;
    js_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 0;
    }
    for (;;) {
        const unsigned char *s, *e;
        int escaped;
        if (c->p >= c->end || *c->p != '"' || js_string(c, &s, &e, &escaped) < 0) return -1;
        if (escaped) return -1; /* an escaped key might spell one of ours */
        js_ws(c);
        if (c->p >= c->end || *c->p != ':') return -1;
        c->p++;
        if (fn(c, s, e - s, seen, ctx) < 0) return -1;
        js_ws(c);
        if (c->p >= c->end) return -1;
        if (*c->p == '}') {
            c->p++;
            return 0;
        }
        if (*c->p != ',') return -1;
        c->p++;
        js_ws(c);
    }
}


/* Each key of interest once only: with a repeated key Python keeps the last value. */
int js_once(unsigned *seen, unsigned bit) {
    if (*seen & bit) return -1;
    *seen |= bit;
    return 0;
}

