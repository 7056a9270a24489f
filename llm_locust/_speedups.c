/* llm_locust._speedups: the client's per-token hot paths in C (Linux). Optional: without a C
 * compiler the package installs without it and the same work is done in Python (tested equal).
 *
 * 1. ``Body``: one stream's response body.
 * 2. ``hdr_record``: values into an HDR histogram's counts (llm_locust.histogram; in _hdr.c).
 *
 * A ``Body`` owns the reading of one HTTP/1.1 chunked response body from a non-blocking socket
 * whose headers were consumed exactly up to their end (see rxclock's header mode). ``read()``
 * does one recvmsg with the kernel's receive timestamp (SO_TIMESTAMPNS), decodes the chunked
 * framing, splits the body into lines and server-sent events exactly as llm_locust.sse.SSEDecoder
 * does, and returns the events the read completed as ``(name, data, arrived_at_s)`` tuples.
 * ``arrived_at_s`` is on time.perf_counter()'s clock (CLOCK_MONOTONIC on Linux), moved back by
 * how long the bytes waited in the kernel (as llm_locust.rxclock.corrected).
 *
 * With ``record`` on, an event that is a plain text chunk (_plain_chunk.c) is not returned: the
 * body records its timing (as llm_locust.records.RequestTimer.text) and text itself, and Python
 * reads them once at the end (``timing()``). ``pump()`` is the event loop's callback: it reads and
 * calls ``notify`` only when Python has something to do (other events, the end, an error).
 *
 * The Python reactor (llm_locust/reactor.py) is the reference: tests/test_speedups.py feeds both
 * the same byte streams split at random offsets and requires the same events.
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
/* llm_locust.sse.MAX_EVENT_BYTES: the most bytes of one line (its LF included) or of one event's data */
#define MAX_EVENT_BYTES (1024 * 1024)


static PyObject *message_str;  /* "message" */
/* pump()'s reads, the text events they brought, and the reads that brought two or more (tokens of
   one stream that arrived together): for llm_locust.batching. */
static unsigned long long n_reads, n_taken, n_coalesced;
static PyObject *parse_error;  /* geventhttpclient.response.HTTPParseError, set by set_errors() */
static PyObject *too_large;    /* llm_locust.sse.EventTooLarge, set by set_errors() */

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
       through text() for the events Python handles: the fields of llm_locust.records.RequestTimer. */
    int record;          /* take plain text chunks here instead of returning them */
    long text_events;
    int has_visible;
    double first_at, first_visible_at, last_text_at;
    Buf itl;             /* doubles, ms */
    Buf text;            /* UTF-8 */
    PyObject *notify;    /* called by pump() with what Python must see */
} Body;

static void reset_event(Body *self) {
    Py_CLEAR(self->name);
    self->has_data = 0;
    self->data.len = 0;
}

/* One text event of the stream at ``at``: as llm_locust.records.RequestTimer.text. */
static int took_text(Body *self, double at, int visible) {
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

static int dispatch(Body *self, PyObject *out) {
    /* A plain text chunk is taken here, unless an event of this read already went to Python
       (which handles them after this read: the order of text events must stay). */
    if (self->record && self->name == NULL && PyList_GET_SIZE(out) == 0) {
        int plain = plain_chunk(self->data.p ? self->data.p : "", self->data.len, &self->text);
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
    PyObject *name = self->name ? self->name : message_str;
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
            PyErr_SetString(too_large, "an event's data is over 1 MiB");
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

/* De-chunked body bytes: complete lines go to the SSE decoder, the rest waits in self->line. */
static int body_bytes(Body *self, const char *p, Py_ssize_t n, double at, PyObject *out) {
    const char *end = p + n;
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        /* as sse.SSEDecoder and the reactor: a line of more than MAX_EVENT_BYTES with its LF, or as
           many bytes still without one, is refused */
        if (self->line.len + (lf ? lf + 1 - p : end - p) > (lf ? MAX_EVENT_BYTES : MAX_EVENT_BYTES - 1)) {
            PyErr_SetString(too_large, "a line of the event stream is over 1 MiB");
            return -1;
        }
        if (lf == NULL) return buf_add(&self->line, p, end - p);
        if (self->line.len) {
            if (buf_add(&self->line, p, lf + 1 - p) < 0) return -1;
            Py_ssize_t len = self->line.len;
            self->line.len = 0; /* the bytes stay valid: sse_line never touches self->line */
            if (sse_line(self, self->line.p, len, at, out) < 0) return -1;
        } else if (sse_line(self, p, lf + 1 - p, at, out) < 0) {
            return -1;
        }
        p = lf + 1;
    }
    return 0;
}

/* What the chunked framing hands over while one read is fed (see chunked_feed). */
typedef struct {
    Body *self;
    double at;
    PyObject *out;
} Feeding;

static int on_data(void *ctx, const char *p, Py_ssize_t n) {
    Feeding *f = ctx;
    return body_bytes(f->self, p, n, f->at, f->out);
}

static int on_tail(void *ctx, const char *p, Py_ssize_t n) {
    /* After the terminal chunk: kept for the response's own parser (it judges trailers and whatever
       follows; llm_locust.reactor feeds it after every read, so this holds one read at most). */
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
    Feeding f = {self, at, out};
    const char *why = NULL;
    int rc = chunked_feed(&self->chunked, p, n, on_data, on_tail, &f, &why);
    if (rc == -1) {
        PyErr_Format(parse_error, "invalid chunked body: %s", why);
        return -1;
    }
    if (rc < 0) return -1;
    if (chunked_ended(&self->chunked)) self->complete = 1;
    return 0;
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
    static char *kwlist[] = {"fd", "record", NULL};
    int fd, record = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|p", kwlist, &fd, &record)) return -1;
    self->fd = fd;
    self->record = record;
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

/* One pump() read for llm_locust.batching: the text events it brought (taken here, or recorded by
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
    .tp_name = "llm_locust._speedups.Body",
    .tp_basicsize = sizeof(Body),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Body(fd, record=False): the chunked SSE body of one response, read from a non-blocking socket.",
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
    Py_XSETREF(too_large, large);
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
    PyModuleDef_HEAD_INIT, "llm_locust._speedups", "The client's per-token hot paths in C.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&BodyType) < 0) return NULL;
    message_str = PyUnicode_InternFromString("message");
    if (message_str == NULL) return NULL;
    parse_error = PyExc_ValueError;
    Py_INCREF(parse_error);
    too_large = PyExc_ValueError;
    Py_INCREF(too_large);
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
