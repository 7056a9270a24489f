/* Shared by the C files of llm_locust._native._speedups. */
#ifndef LLM_LOCUST_SPEEDUPS_H
#define LLM_LOCUST_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* A growable byte buffer (PyMem). */
typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

int buf_add(Buf *b, const char *src, Py_ssize_t n);
void buf_free(Buf *b);

/* llm_locust.wire.sse.MAX_EVENT_BYTES: the most bytes of one line (its LF included) or of one event's data */
#define MAX_EVENT_BYTES (1024 * 1024)

/* _chunked.c: HTTP/1.1 chunked framing, as strict as llhttp. */
typedef struct {
    int state;
    int size_digits;
    unsigned long long chunk_left;
} Chunked;
typedef int (*chunk_sink)(void *ctx, const char *p, Py_ssize_t n);
/* Feed raw bytes: chunk data goes to on_data; from the terminal chunk's size line on, "0\r\n" and
 * every later byte go to on_tail. 0: fine; -1: invalid framing (*why says what); -2: a sink failed
 * (its Python error is set). */
int chunked_feed(Chunked *c, const char *p, Py_ssize_t n, chunk_sink on_data, chunk_sink on_tail, void *ctx,
                 const char **why);
int chunked_ended(const Chunked *c);

/* _speedups.c: one stream's response body (the Python type llm_locust._native._speedups.Body). */
typedef struct {
    PyObject_HEAD
    int fd;
    Chunked chunked; /* the chunked framing (_chunked.c) */
    int complete;   /* the terminal chunk's size line was read: the rest is in extra, for the parser */
    int closed;     /* the peer closed the connection (a read returned 0 bytes) */
    Buf line;       /* a body line still waiting for its LF */
    Buf data;       /* the open event's data lines, joined with LF */
    int has_data;
    PyObject *name; /* the open event's name; NULL means "message" */
    double data_at; /* arrival of the open event's last data line */
    double last_at; /* arrival of the last read's bytes */
    Py_ssize_t extra_len; /* "0\r\n" and the bytes after the terminal chunk's size line (trailers, ...) */
    char *extra;
    /* The stream's text timings, recorded here for the plain text chunks (see _plain_chunk.c) and
       through text() for the events Python handles: the fields of llm_locust.metrics.records.RequestTimer. */
    int record;          /* take plain text events here instead of returning them */
    int scanner;         /* which flavor's plain events (PLAIN_*) */
    int ndjson;          /* the body is NDJSON: every line is an event named "" (else SSE) */
    long text_events;
    int has_visible;
    double first_at, first_visible_at, last_text_at;
    Buf itl;             /* doubles, ms */
    Buf text;            /* UTF-8 */
    PyObject *notify;    /* called by pump() with what Python must see */
} Body;

extern PyObject *sp_message_str; /* "message" */
extern PyObject *sp_empty_str;   /* "" (NDJSON events' name) */
extern PyObject *sp_too_large;   /* llm_locust.wire.sse.EventTooLarge */

/* _events.c: de-chunked body bytes into lines and events (appended to out, a list), the text
 * timings of the plain chunks taken here. -1: a Python error is set. */
int body_bytes(Body *self, const char *p, Py_ssize_t n, double at, PyObject *out);
int ndjson_line(Body *self, const char *p, Py_ssize_t n, double at, PyObject *out);
int dispatch(Body *self, PyObject *out);
int took_text(Body *self, double at, int visible);
void reset_event(Body *self);

/* _plain_chunk.c: whether one event's data is the common event of a flavor that carries only text
 * (as that flavor's Python plain_content decides on its JSON). 1: yes, and the text, UTF-8, was
 * appended to ``text``; 0: no, or not sure (the caller hands the event to Python); -1: out of
 * memory (a Python error is set). */
enum {
    PLAIN_NONE = 0,
    PLAIN_OPENAI_CHAT,
    PLAIN_OPENAI_COMPLETIONS,
    PLAIN_OPENAI_RESPONSES,
    PLAIN_ANTHROPIC_MESSAGES,
    PLAIN_OLLAMA_CHAT,
    PLAIN_OLLAMA_GENERATE,
    PLAIN_KINDS
};
int plain_event(int kind, const char *data, Py_ssize_t n, Buf *text);
/* The kind of a flavor's --api name; -1 for none. */
int plain_kind(const char *name);


/* _hdr.c */
PyObject *hdr_record(PyObject *mod, PyObject *args);

#endif
