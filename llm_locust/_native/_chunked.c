/* HTTP/1.1 chunked framing for llm_locust._native._speedups.Body, accepting exactly what the response's own
 * parser (llhttp, strict, inside geventhttpclient) accepts, so that the compiled and the Python
 * readers agree on every body (tests/test_fuzz.py, fuzz/targets.py).
 *
 * chunk      = chunk-size *( ";" ext-name [ "=" ext-value ] ) CRLF chunk-data CRLF
 * chunk-size = 1*HEXDIG, at most 2**64 - 1; no whitespace anywhere on the line
 * ext-name   = *tchar (the first one may be empty only when "=" follows)
 * ext-value  = *tchar / quoted-string (HTAB, SP, VCHAR but '"' and '\', obs-text; quoted-pair)
 *
 * The terminal chunk's size line is checked here too; what follows it (trailer fields and the
 * final CRLF) goes to on_tail, preceded by "0\r\n", for the response's parser to judge: llhttp
 * applies header rules to trailers (Content-Length is refused there, for one) that are not worth
 * copying, and trailers are rare and at the very end. */
#include "_speedups.h"

#include <string.h>

enum {
    C_SIZE,         /* hex digits of a chunk size */
    C_EXT_START,    /* after ';': a name, or '=' */
    C_EXT_NAME,     /* in an extension name */
    C_EXT_VALUE0,   /* after '=': a token, a quoted string, or nothing */
    C_EXT_VALUE,    /* in a token value */
    C_EXT_QUOTED,   /* in a quoted value */
    C_EXT_PAIR,     /* after '\' in a quoted value */
    C_EXT_QUOTE_END,/* after a quoted value's closing '"' */
    C_SIZE_LF,      /* the LF after the size line's CR */
    C_DATA,         /* chunk data */
    C_DATA_CR,      /* the CR after chunk data */
    C_DATA_LF,      /* the LF after chunk data's CR */
    C_TAIL,         /* after the terminal chunk's size line: for the response's parser */
};

static int is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_qdtext(unsigned char c) {
    return c == '\t' || (c >= 0x20 && c <= 0x7e && c != '"' && c != '\\') || c >= 0x80;
}

static int is_pair_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80; }

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

#define FAIL(what)          \
    do {                    \
        *why = (what);      \
        return -1;          \
    } while (0)

/* The end of the size line's chunk-size or extension part: ';' (another extension) or CR. */
static int size_line_next(Chunked *c, unsigned char ch, const char **why, const char *what) {
    if (ch == ';') {
        c->state = C_EXT_START;
        return 0;
    }
    if (ch == '\r') {
        c->state = C_SIZE_LF;
        return 0;
    }
    FAIL(what);
}

int chunked_feed(Chunked *c, const char *p, Py_ssize_t n, chunk_sink on_data, chunk_sink on_tail, void *ctx,
                 const char **why) {
    const char *end = p + n;
    while (p < end) {
        unsigned char ch = (unsigned char)*p;
        switch (c->state) {
        case C_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                if (c->chunk_left >> 60) FAIL("chunk size overflow");
                c->chunk_left = c->chunk_left * 16 + (unsigned long long)v;
                c->size_digits = 1;
                break;
            }
            if (!c->size_digits) FAIL("no chunk size");
            if (size_line_next(c, ch, why, "invalid character in chunk size") < 0) return -1;
            break;
        }
        case C_EXT_START:
            if (ch == '=') {
                c->state = C_EXT_VALUE0;
            } else if (is_tchar(ch)) {
                c->state = C_EXT_NAME;
            } else {
                FAIL("invalid character in chunk extensions");
            }
            break;
        case C_EXT_NAME:
            if (is_tchar(ch)) break;
            if (ch == '=') {
                c->state = C_EXT_VALUE0;
                break;
            }
            if (size_line_next(c, ch, why, "invalid character in chunk extensions name") < 0) return -1;
            break;
        case C_EXT_VALUE0:
            if (ch == '"') {
                c->state = C_EXT_QUOTED;
                break;
            }
            if (is_tchar(ch)) {
                c->state = C_EXT_VALUE;
                break;
            }
            if (size_line_next(c, ch, why, "invalid character in chunk extensions value") < 0) return -1;
            break;
        case C_EXT_VALUE:
            if (is_tchar(ch)) break;
            if (size_line_next(c, ch, why, "invalid character in chunk extensions value") < 0) return -1;
            break;
        case C_EXT_QUOTED:
            if (ch == '"') {
                c->state = C_EXT_QUOTE_END;
            } else if (ch == '\\') {
                c->state = C_EXT_PAIR;
            } else if (!is_qdtext(ch)) {
                FAIL("invalid character in chunk extensions quoted value");
            }
            break;
        case C_EXT_PAIR:
            if (!is_pair_char(ch)) FAIL("invalid quoted-pair in chunk extensions quoted value");
            c->state = C_EXT_QUOTED;
            break;
        case C_EXT_QUOTE_END:
            if (size_line_next(c, ch, why, "invalid character in chunk extensions quote value") < 0) return -1;
            break;
        case C_SIZE_LF:
            if (ch != '\n') FAIL("expected LF after chunk size");
            if (c->chunk_left) {
                c->state = C_DATA;
                break;
            }
            c->state = C_TAIL;  /* the terminal chunk: the rest is the response parser's */
            p++;
            if (on_tail(ctx, "0\r\n", 3) < 0) return -2;
            if (p < end && on_tail(ctx, p, end - p) < 0) return -2;
            return 0;
        case C_DATA: {
            Py_ssize_t take = end - p;
            if ((unsigned long long)take > c->chunk_left) take = (Py_ssize_t)c->chunk_left;
            if (on_data(ctx, p, take) < 0) return -2;
            p += take;
            c->chunk_left -= (unsigned long long)take;
            if (c->chunk_left == 0) c->state = C_DATA_CR;
            continue;
        }
        case C_DATA_CR:
            if (ch != '\r') FAIL("missing expected CR after chunk data");
            c->state = C_DATA_LF;
            break;
        case C_DATA_LF:
            if (ch != '\n') FAIL("expected LF after chunk data");
            c->state = C_SIZE;
            c->size_digits = 0;
            break;
        case C_TAIL:
            return on_tail(ctx, p, end - p) < 0 ? -2 : 0;
        }
        p++;
    }
    return 0;
}

int chunked_ended(const Chunked *c) { return c->state == C_TAIL; }
