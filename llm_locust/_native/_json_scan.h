/* _json_scan.c: the strict JSON walk of the plain-event scanners. */
#ifndef LLM_LOCUST_JSON_SCAN_H
#define LLM_LOCUST_JSON_SCAN_H

#include "_speedups.h"

#define MAX_DEPTH 32
#define MAX_INT_DIGITS 15

typedef struct {
    const unsigned char *p, *end;
} Cur;

/* Skip JSON whitespace. */
void js_ws(Cur *c);
/* Whether [p, end) is valid UTF-8 (without surrogates or overlong forms). */
int js_utf8_ok(const unsigned char *p, const unsigned char *end);
/* A string at c->p (its opening quote): [*s, *e) its raw inside, *escaped whether it has escapes. 0 or -1. */
int js_string(Cur *c, const unsigned char **s, const unsigned char **e, int *escaped);
/* The text of a string whose raw inside is [s, e), appended to out (escapes decoded). */
int js_unescape(const unsigned char *s, const unsigned char *e, Buf *out);
int js_number(Cur *c);
int js_literal(Cur *c, const char *word, size_t n);
/* Any value, skipped (containers nested up to MAX_DEPTH). */
int js_skip_value(Cur *c, int depth);
/* null, or (with allow_empty) null or "": the falsy values a plain event may hold where Python tests
 * a value's truth. */
int js_null_or_empty(Cur *c, int allow_empty);

typedef int (*MemberFn)(Cur *c, const unsigned char *key, Py_ssize_t key_len, unsigned *seen, void *ctx);
/* An object at c->p: each member's value handed to fn (which skips what it does not need). */
int js_object(Cur *c, MemberFn fn, unsigned *seen, void *ctx);
/* Each key of interest once only: with a repeated key Python keeps the last value. */
int js_once(unsigned *seen, unsigned bit);

#define KEY(k) (key_len == (Py_ssize_t)(sizeof(k) - 1) && memcmp(key, k, sizeof(k) - 1) == 0)

#endif
