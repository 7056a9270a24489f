/* llm_locust._native._speedups: a stream body's lines and server-sent events, exactly as
 * llm_locust.wire.sse.SSEDecoder (fed line by line) gives them, and the text timings of the events the
 * body takes itself (as llm_locust.metrics.records.RequestTimer.text). */
#include "_speedups.h"

#include <string.h>

int buf_add(Buf *b, const char *src, Py_ssize_t n) {
    if (n == 0) return 0; /* memcpy's pointers must be valid even for no bytes (UBSan) */
    if (b->len + n > b->cap) {
        Py_ssize_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        char *p = PyMem_Realloc(b->p, (size_t)cap);
        if (p == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, (size_t)n);
    b->len += n;
    return 0;
}

void buf_free(Buf *b) {
    PyMem_Free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void reset_event(Body *self) {
    Py_CLEAR(self->name);
    self->has_data = 0;
    self->data.len = 0;
}

/* One text event of the stream at ``at``: as llm_locust.metrics.records.RequestTimer.text. */
int took_text(Body *self, double at, int visible) {
    if (self->text_events == 0) {
        self->first_at = at;
    } else {
        double itl_ms = (at - self->last_text_at) * 1000.0;
        if (buf_add(&self->itl, (const char *)&itl_ms, sizeof itl_ms) < 0) return -1;
    }
    if (visible && !self->has_visible) {
        self->first_visible_at = at;
        self->has_visible = 1;
    }
    self->last_text_at = at;
    self->text_events++;
    return 0;
}

int dispatch(Body *self, PyObject *out) {
    /* A plain text chunk is taken here, unless an event of this read already went to Python
       (which handles them after this read: the order of text events must stay). */
    /* OpenAI chat and completions take an SSE event named "error" as an error: only an unnamed
       event is theirs; the other flavors decide by the data alone. */
    int named_ok = self->scanner != PLAIN_OPENAI_CHAT && self->scanner != PLAIN_OPENAI_COMPLETIONS;
    if (self->record && (named_ok || self->name == NULL) && PyList_GET_SIZE(out) == 0) {
        int plain = plain_event(self->scanner, self->data.p ? self->data.p : "", self->data.len, &self->text);
        if (plain < 0) return -1;
        if (plain) {
            reset_event(self);
            return took_text(self, self->data_at, 1);
        }
    }
    PyObject *data = PyUnicode_DecodeUTF8(self->data.p ? self->data.p : "", self->data.len, "replace");
    if (data == NULL) return -1;
    PyObject *at = PyFloat_FromDouble(self->data_at);
    if (at == NULL) {
        Py_DECREF(data);
        return -1;
    }
    PyObject *name = self->name ? self->name : sp_message_str;
    Py_INCREF(name);
    PyObject *event = PyTuple_New(3);
    if (event == NULL) {
        Py_DECREF(data);
        Py_DECREF(at);
        Py_DECREF(name);
        return -1;
    }
    PyTuple_SET_ITEM(event, 0, name);
    PyTuple_SET_ITEM(event, 1, data);
    PyTuple_SET_ITEM(event, 2, at);
    int rc = PyList_Append(out, event);
    Py_DECREF(event);
    reset_event(self);
    return rc;
}

/* One SSE line without its terminator (the fields of sse.SSEDecoder.feed's generic path). */
static int sse_field(Body *self, const char *p, Py_ssize_t n, double at, PyObject *out) {
    if (n == 0) {
        if (self->has_data) return dispatch(self, out);
        reset_event(self);
        return 0;
    }
    if (p[0] == ':') return 0; /* comment */
    const char *colon = memchr(p, ':', (size_t)n);
    Py_ssize_t field_len = colon ? colon - p : n;
    const char *value = colon ? colon + 1 : p + n;
    Py_ssize_t value_len = colon ? n - field_len - 1 : 0;
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    if (field_len == 4 && memcmp(p, "data", 4) == 0) {
        if ((self->has_data ? self->data.len + 1 : 0) + value_len > MAX_EVENT_BYTES) {
            PyErr_SetString(sp_too_large, "an event's data is over 1 MiB");
            return -1;
        }
        self->data_at = at;
        if (self->has_data && buf_add(&self->data, "\n", 1) < 0) return -1;
        if (buf_add(&self->data, value, value_len) < 0) return -1;
        self->has_data = 1;
    } else if (field_len == 5 && memcmp(p, "event", 5) == 0) {
        Py_CLEAR(self->name);
        if (value_len > 0) {
            self->name = PyUnicode_DecodeUTF8(value, value_len, "replace");
            if (self->name == NULL) return -1;
        }
    } /* "id", "retry" and unknown fields do not matter to a load generator */
    return 0;
}

/* One body line including its final LF: CRLF or LF ends it; lone CRs inside also end lines. */
static int sse_line(Body *self, const char *p, Py_ssize_t n, double at, PyObject *out) {
    n--; /* the LF */
    if (n > 0 && p[n - 1] == '\r') n--;
    const char *end = p + n;
    for (;;) {
        const char *cr = memchr(p, '\r', (size_t)(end - p));
        if (cr == NULL) return sse_field(self, p, end - p, at, out);
        if (sse_field(self, p, cr - p, at, out) < 0) return -1;
        p = cr + 1;
    }
}

/* One NDJSON line (``n`` bytes, its LF excluded): an event named "" unless it is blank, as
   llm_locust.wire.ndjson.NDJSONDecoder gives it. */
int ndjson_line(Body *self, const char *p, Py_ssize_t n, double at, PyObject *out) {
    if (n > 0 && p[n - 1] == '\r') n--;
    Py_ssize_t i = 0;
    while (i < n && (p[i] == ' ' || (p[i] >= '\t' && p[i] <= '\r'))) i++; /* bytes.strip()'s blanks */
    if (i == n) return 0;
    self->data.len = 0;
    if (buf_add(&self->data, p, n) < 0) return -1;
    self->has_data = 1;
    self->data_at = at;
    Py_INCREF(sp_empty_str);
    Py_XSETREF(self->name, sp_empty_str); /* NDJSON events are named "" */
    return dispatch(self, out);
}

/* One complete body line, LF included, for the body's framing. */
static int body_line(Body *self, const char *p, Py_ssize_t n, double at, PyObject *out) {
    return self->ndjson ? ndjson_line(self, p, n - 1, at, out) : sse_line(self, p, n, at, out);
}

/* De-chunked body bytes: complete lines go to the SSE (or NDJSON) decoder, the rest waits in
   self->line. */
int body_bytes(Body *self, const char *p, Py_ssize_t n, double at, PyObject *out) {
    const char *end = p + n;
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        /* as sse.SSEDecoder and the reactor: a line of more than MAX_EVENT_BYTES with its LF, or as
           many bytes still without one, is refused */
        if (self->line.len + (lf ? lf + 1 - p : end - p) > (lf ? MAX_EVENT_BYTES : MAX_EVENT_BYTES - 1)) {
            PyErr_SetString(sp_too_large, "a line of the event stream is over 1 MiB");
            return -1;
        }
        if (lf == NULL) return buf_add(&self->line, p, end - p);
        if (self->line.len) {
            if (buf_add(&self->line, p, lf + 1 - p) < 0) return -1;
            Py_ssize_t len = self->line.len;
            self->line.len = 0; /* the bytes stay valid: body_line never touches self->line */
            if (body_line(self, self->line.p, len, at, out) < 0) return -1;
        } else if (body_line(self, p, lf + 1 - p, at, out) < 0) {
            return -1;
        }
        p = lf + 1;
    }
    return 0;
}
