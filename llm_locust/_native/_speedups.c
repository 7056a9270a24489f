/* llm_locust._native._speedups: the client's per-token hot paths in C (Linux). Optional: without a C
 * compiler the package installs without it and the same work is done in Python (tested equal).
 *
 * 1. ``Body``: one stream's response body.
 * 2. ``hdr_record``: values into an HDR histogram's counts (llm_locust.metrics.histogram; in _hdr.c).
 *
 * A ``Body`` owns the reading of one HTTP/1.1 chunked response body from a non-blocking socket
 * whose headers were consumed exactly up to their end (see rxclock's header mode). ``read()``
 * does one recvmsg with the kernel's receive timestamp (SO_TIMESTAMPNS), decodes the chunked
 * framing, splits the body into lines and server-sent events exactly as llm_locust.wire.sse.SSEDecoder
 * does, and returns the events the read completed as ``(name, data, arrived_at_s)`` tuples.
 * ``arrived_at_s`` is on time.perf_counter()'s clock (CLOCK_MONOTONIC on Linux), moved back by
 * how long the bytes waited in the kernel (as llm_locust.wire.rxclock.corrected).
 *
 * With ``record`` on, a plain text event of the ``scanner`` flavor (_plain_chunk.c) is not returned:
 * the body records its timing (as llm_locust.metrics.records.RequestTimer.text) and text itself, and
 * Python reads them once at the end (``timing()``). ``pump()`` is the event loop's callback: it reads and
 * calls ``notify`` only when Python has something to do (other events, the end, an error).
 *
 * The Python reactor (llm_locust/wire/reactor.py) is the reference: tests/unit/test_speedups.py feeds both
 * the same byte streams split at random offsets and requires the same events, and fuzz/ does the
 * same with coverage-guided inputs.
 *
 * Files: this one (the type, its reads, the module), _chunked.c (the chunked framing), _events.c
 * (lines and events of the de-chunked body), _plain_chunk.c (the plain-event scans, on _json_scan.c),
 * _hdr.c (HDR).
 */
#include "_speedups.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#ifndef SO_TIMESTAMPNS
#define SO_TIMESTAMPNS 35
#endif
#ifndef SCM_TIMESTAMPNS
#define SCM_TIMESTAMPNS SO_TIMESTAMPNS
#endif

#define READ_BYTES 65536
#define MAX_AGE_NS 1000000000LL


PyObject *sp_message_str;  /* "message" */
PyObject *sp_empty_str;    /* "" */
/* pump()'s reads, the text events they brought, and the reads that brought two or more (tokens of
   one stream that arrived together): for llm_locust.wire.batching. */
static unsigned long long n_reads, n_taken, n_coalesced;
static PyObject *parse_error;  /* geventhttpclient.response.HTTPParseError, set by set_errors() */
PyObject *sp_too_large;    /* llm_locust.wire.sse.EventTooLarge, set by set_errors() */

/* What the chunked framing hands over while one read is fed (see chunked_feed). */
typedef struct {
    Body *self;
    double at;
    PyObject *out;
    PyObject *too_large[3]; /* a line or event over the bound, raised once the read's framing is checked */
} Feeding;

static int on_data(void *ctx, const char *p, Py_ssize_t n) {
    Feeding *f = ctx;
    if (f->too_large[0] != NULL) return 0; /* the stream has failed: only the framing is checked now */
    if (body_bytes(f->self, p, n, f->at, f->out) == 0) return 0;
    if (!PyErr_ExceptionMatches(sp_too_large)) return -1;
    /* The Python reactor's parser takes a whole read before its lines are split: a framing error
       later in the same read is what it reports, so that comes first here too. */
    PyErr_Fetch(&f->too_large[0], &f->too_large[1], &f->too_large[2]);
    return 0;
}

static int on_tail(void *ctx, const char *p, Py_ssize_t n) {
    /* After the terminal chunk: kept for the response's own parser (it judges trailers and whatever
       follows; llm_locust.wire.reactor feeds it after every read, so this holds one read at most). */
    Body *self = ((Feeding *)ctx)->self;
    char *x = PyMem_Realloc(self->extra, (size_t)(self->extra_len + n));
    if (x == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(x + self->extra_len, p, (size_t)n);
    self->extra = x;
    self->extra_len += n;
    return 0;
}

/* Raw bytes from the socket through the chunked framing. */
static int feed(Body *self, const char *p, Py_ssize_t n, double at, PyObject *out) {
    Feeding f = {self, at, out, {NULL, NULL, NULL}};
    const char *why = NULL;
    int rc = chunked_feed(&self->chunked, p, n, on_data, on_tail, &f, &why);
    if (chunked_ended(&self->chunked)) self->complete = 1;
    if (rc < 0 || f.too_large[0] == NULL) {
        Py_XDECREF(f.too_large[0]);
        Py_XDECREF(f.too_large[1]);
        Py_XDECREF(f.too_large[2]);
        if (rc == -1) PyErr_Format(parse_error, "invalid chunked body: %s", why);
        return rc < 0 ? -1 : 0;
    }
    PyErr_Restore(f.too_large[0], f.too_large[1], f.too_large[2]);
    return -1;
}

static double now_s(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long now_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- the Python type ---------------------------------------------------------------------- */

static int Body_init(Body *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fd", "record", "ndjson", "scanner", NULL};
    int fd, record = 0, ndjson = 0;
    const char *scanner = "openai-chat";
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|pps", kwlist, &fd, &record, &ndjson, &scanner)) return -1;
    int kind = plain_kind(scanner);
    if (kind < 0) {
        PyErr_Format(PyExc_ValueError, "no plain-event scanner for '%s'", scanner);
        return -1;
    }
    self->fd = fd;
    self->record = record;
    self->ndjson = ndjson;
    self->scanner = kind;
    memset(&self->chunked, 0, sizeof self->chunked);
    self->last_at = now_s(CLOCK_MONOTONIC);
    return 0;
}

static void Body_dealloc(Body *self) {
    buf_free(&self->line);
    buf_free(&self->data);
    PyMem_Free(self->extra);
    buf_free(&self->itl);
    buf_free(&self->text);
    Py_XDECREF(self->name);
    Py_XDECREF(self->notify);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Body_read(Body *self, PyObject *Py_UNUSED(ignored)) {
    char buf[READ_BYTES];
    char control[64];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do {
        n = recvmsg(self->fd, &msg, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) Py_RETURN_NONE;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    double at = now_s(CLOCK_MONOTONIC);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS
            && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec rx;
            memcpy(&rx, CMSG_DATA(c), sizeof rx);
            long long age = now_ns(CLOCK_REALTIME) - ((long long)rx.tv_sec * 1000000000LL + rx.tv_nsec);
            if (age > 0 && age < MAX_AGE_NS) at -= (double)age / 1e9;
        }
    }
    self->last_at = at;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    if (n == 0) {
        self->closed = 1;
        return out;
    }
    if (feed(self, buf, n, at, out) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static PyObject *Body_feed(Body *self, PyObject *args) {
    /* Bytes as if read at ``at`` (for tests, and bytes read before the hand-over). */
    Py_buffer view;
    double at;
    if (!PyArg_ParseTuple(args, "y*d", &view, &at)) return NULL;
    self->last_at = at;
    PyObject *out = PyList_New(0);
    if (out != NULL && feed(self, view.buf, view.len, at, out) < 0) Py_CLEAR(out);
    PyBuffer_Release(&view);
    return out;
}

static PyObject *Body_end(Body *self, PyObject *out) {
    /* The response's parser says the message ended (after the trailers): the rest of a last line
       without its newline is dropped, as geventhttpclient's readline does, and an event still open
       is dispatched into ``out`` (after that read's events), as sseclient-py does. */
    if (!PyList_Check(out)) {
        PyErr_SetString(PyExc_TypeError, "end() takes the list of the read's events");
        return NULL;
    }
    if (self->complete && self->ndjson && self->line.len) {
        /* an NDJSON line is complete without its LF */
        Py_ssize_t len = self->line.len;
        self->line.len = 0;
        if (ndjson_line(self, self->line.p, len, self->last_at, out) < 0) return NULL;
        Py_RETURN_NONE;
    }
    self->line.len = 0;
    if (self->complete && self->has_data && dispatch(self, out) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Body_eof(Body *self, PyObject *Py_UNUSED(ignored)) {
    self->closed = 1; /* what read() does on a read of 0 bytes */
    Py_RETURN_NONE;
}

static PyObject *Body_take_extra(Body *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *b = PyBytes_FromStringAndSize(self->extra ? self->extra : "", self->extra_len);
    PyMem_Free(self->extra);
    self->extra = NULL;
    self->extra_len = 0;
    return b;
}

/* One pump() read for llm_locust.wire.batching: the text events it brought (taken here, or recorded by
   Python through text() during notify), and whether there were two or more. */
static void count_read(const Body *self, long before) {
    long events = self->text_events - before;
    n_reads++;
    n_taken += (unsigned long long)events;
    n_coalesced += events > 1;
}

static PyObject *Body_pump(Body *self, PyObject *Py_UNUSED(ignored)) {
    /* The event loop's callback: read, and call notify only when Python has something to do. */
    long before = self->text_events;
    PyObject *arg = Body_read(self, NULL);
    if (arg == Py_None) { /* nothing was waiting */
        Py_DECREF(arg);
        Py_RETURN_NONE;
    }
    if (arg == NULL) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        if (tb != NULL) PyException_SetTraceback(value, tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        arg = value;
    } else if (PyList_GET_SIZE(arg) == 0 && !self->complete && !self->closed) {
        Py_CLEAR(arg); /* every event was a plain text chunk, taken here */
    }
    PyObject *r = Py_None;
    Py_INCREF(r);
    if (arg != NULL && self->notify != NULL) {
        PyObject *notify = self->notify;
        Py_INCREF(notify);
        Py_SETREF(r, PyObject_CallOneArg(notify, arg));
        Py_DECREF(notify);
    }
    Py_XDECREF(arg);
    count_read(self, before);
    return r;
}

static PyObject *Body_text(Body *self, PyObject *args) {
    double at;
    int visible;
    PyObject *piece;
    if (!PyArg_ParseTuple(args, "dpU", &at, &visible, &piece)) return NULL;
    PyObject *utf8 = PyUnicode_AsEncodedString(piece, "utf-8", "surrogatepass");
    if (utf8 == NULL) return NULL;
    int rc = took_text(self, at, visible);
    if (rc == 0) rc = buf_add(&self->text, PyBytes_AS_STRING(utf8), PyBytes_GET_SIZE(utf8));
    Py_DECREF(utf8);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *maybe_at(int known, double at) {
    if (known) return PyFloat_FromDouble(at);
    Py_RETURN_NONE;
}

static PyObject *Body_timing(Body *self, PyObject *Py_UNUSED(ignored)) {
    int any = self->text_events > 0;
    PyObject *text = PyUnicode_DecodeUTF8(self->text.p ? self->text.p : "", self->text.len, "surrogatepass");
    if (text == NULL) return NULL;
    return Py_BuildValue("(lNNNy#N)", self->text_events, maybe_at(any, self->first_at),
                         maybe_at(self->has_visible, self->first_visible_at), maybe_at(any, self->last_text_at),
                         self->itl.p ? self->itl.p : "", self->itl.len, text);
}

static PyObject *Body_get_record(Body *self, void *c) { return PyBool_FromLong(self->record); }
static int Body_set_record(Body *self, PyObject *value, void *c) {
    int v = value ? PyObject_IsTrue(value) : 0;
    if (v < 0) return -1;
    self->record = v;
    return 0;
}
static PyObject *Body_get_notify(Body *self, void *c) {
    PyObject *n = self->notify ? self->notify : Py_None;
    Py_INCREF(n);
    return n;
}
static int Body_set_notify(Body *self, PyObject *value, void *c) {
    PyObject *n = value == Py_None ? NULL : value;
    Py_XINCREF(n);
    Py_XSETREF(self->notify, n);
    return 0;
}

static PyObject *Body_get_complete(Body *self, void *c) { return PyBool_FromLong(self->complete); }
static PyObject *Body_get_closed(Body *self, void *c) { return PyBool_FromLong(self->closed); }
static PyObject *Body_get_last_at(Body *self, void *c) { return PyFloat_FromDouble(self->last_at); }
static PyObject *Body_get_fd(Body *self, void *c) { return PyLong_FromLong(self->fd); }

static PyMethodDef Body_methods[] = {
    {"read", (PyCFunction)Body_read, METH_NOARGS,
     "read() -> list of (name, data, arrived_at_s), or None when nothing was waiting.\n"
     "Raises OSError from recvmsg, HTTPParseError for a broken chunked body and EventTooLarge for a\n"
     "line or an event's data over MAX_EVENT_BYTES."},
    {"feed", (PyCFunction)Body_feed, METH_VARARGS, "feed(raw: bytes, at: float) -> list of events"},
    {"end", (PyCFunction)Body_end, METH_O,
     "end(events): the message ended; an event still open is appended to events (a read's list)"},
    {"eof", (PyCFunction)Body_eof, METH_NOARGS, "eof(): the peer closed, as read() finds it (with feed, for tests)"},
    {"take_extra", (PyCFunction)Body_take_extra, METH_NOARGS,
     "once complete: \"0\\r\\n\" and the bytes read after the terminal chunk's size line, for the response's\n"
     "parser (each call returns what was not taken yet)"},
    {"pump", (PyCFunction)Body_pump, METH_NOARGS,
     "pump(): read() for the event loop; calls notify(events or exception) unless every event was\n"
     "a plain text chunk taken here (record on) and the body goes on."},
    {"text", (PyCFunction)Body_text, METH_VARARGS,
     "text(at, visible, piece): a text event handled in Python, recorded with the others"},
    {"timing", (PyCFunction)Body_timing, METH_NOARGS,
     "timing() -> (text_events, first_at, first_visible_at, last_text_at, itl_ms doubles as bytes, text)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Body_getset[] = {
    {"complete", (getter)Body_get_complete, NULL,
     "the terminal chunk's size line was read (trailers and the final CRLF go to the parser)", NULL},
    {"closed", (getter)Body_get_closed, NULL, "the peer closed the connection", NULL},
    {"last_at", (getter)Body_get_last_at, NULL, "arrival of the last read's bytes (perf_counter s)", NULL},
    {"fd", (getter)Body_get_fd, NULL, "the socket's file descriptor", NULL},
    {"record", (getter)Body_get_record, (setter)Body_set_record,
     "take plain text chunks here (see timing()) instead of returning them", NULL},
    {"notify", (getter)Body_get_notify, (setter)Body_set_notify, "what pump() calls (None: nothing)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject BodyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "llm_locust._native._speedups.Body",
    .tp_basicsize = sizeof(Body),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Body(fd, record=False, ndjson=False, scanner='openai-chat'): the chunked SSE (or NDJSON) body\n"
              "of one response (its plain text events those of the scanner's flavor), read\n"
              "from a non-blocking socket.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Body_init,
    .tp_dealloc = (destructor)Body_dealloc,
    .tp_methods = Body_methods,
    .tp_getset = Body_getset,
};

static PyObject *set_errors(PyObject *mod, PyObject *args) {
    PyObject *broken, *large;
    if (!PyArg_ParseTuple(args, "OO", &broken, &large)) return NULL;
    Py_INCREF(broken);
    Py_XSETREF(parse_error, broken);
    Py_INCREF(large);
    Py_XSETREF(sp_too_large, large);
    Py_RETURN_NONE;
}

static PyObject *read_counts(PyObject *mod, PyObject *Py_UNUSED(ignored)) {
    return Py_BuildValue("(KKK)", n_reads, n_taken, n_coalesced);
}

static PyObject *monotonic(PyObject *mod, PyObject *Py_UNUSED(ignored)) {
    return PyFloat_FromDouble(now_s(CLOCK_MONOTONIC));
}


static PyMethodDef module_methods[] = {
    {"hdr_record", hdr_record, METH_VARARGS,
     "hdr_record(counts, values, geometry) -> (n, lo, hi, sum, sum_sq, vmin, vmax) (see the source)"},
    {"set_errors", set_errors, METH_VARARGS,
     "set_errors(broken_body, event_too_large): the exception classes raised for a broken chunked body\n"
     "and for a line or event over MAX_EVENT_BYTES"},
    {"monotonic", monotonic, METH_NOARGS, "the clock of arrived_at_s (equal to time.perf_counter)"},
    {"read_counts", read_counts, METH_NOARGS,
     "(reads, text events, reads with two or more text events) of every Body.pump so far"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "llm_locust._native._speedups", "The client's per-token hot paths in C.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&BodyType) < 0) return NULL;
    sp_message_str = PyUnicode_InternFromString("message");
    if (sp_message_str == NULL) return NULL;
    sp_empty_str = PyUnicode_InternFromString("");
    if (sp_empty_str == NULL) return NULL;
    parse_error = PyExc_ValueError;
    Py_INCREF(parse_error);
    sp_too_large = PyExc_ValueError;
    Py_INCREF(sp_too_large);
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&BodyType);
    if (PyModule_AddObject(m, "Body", (PyObject *)&BodyType) < 0) {
        Py_DECREF(&BodyType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
