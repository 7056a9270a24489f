/* Shared by the C files of llm_locust._speedups. */
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

/* _plain_chunk.c: whether one event's data is the common chat-completion chunk that carries only
 * text (as llm_locust.openai_chat.plain_content decides on its JSON). 1: yes, and the text, UTF-8,
 * was appended to ``text``; 0: no, or not sure (the caller hands the event to Python); -1: out of
 * memory (a Python error is set). */
int plain_chunk(const char *data, Py_ssize_t n, Buf *text);

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

/* _hdr.c */
PyObject *hdr_record(PyObject *mod, PyObject *args);

#endif
