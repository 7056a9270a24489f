/* llm_locust._native._speedups.hdr_record: values into an HDR histogram's counts (llm_locust.metrics.histogram). */
#include "_speedups.h"

/* ---- HDR histogram recording --------------------------------------------------------------- */

/* hdr_record(counts, values, geometry) -> (n, lo_units, hi_units, sum_units, sum_sq_units, vmin, vmax)
 *
 * Each value v (in display units) is stored as units = min(int(v * scale + 0.5), highest), or 0
 * when v is not > 0, and counted at the index HdrHistogram.record_value computes. ``counts`` is
 * the histogram's writable uint64 array; ``values`` a buffer of doubles (array('d')) or a
 * sequence of floats; ``geometry`` = (unit_magnitude, sub_bucket_half_count_magnitude,
 * sub_bucket_mask, sub_bucket_half_count, highest_units, scale). vmin/vmax are the smallest and
 * largest value clamped at 0 (as llm_locust.metrics.histogram.Histogram.record_many keeps them). */
static PyObject *u128(unsigned __int128 v) {
    PyObject *hi = PyLong_FromUnsignedLongLong((unsigned long long)(v >> 64));
    PyObject *lo = PyLong_FromUnsignedLongLong((unsigned long long)v);
    PyObject *sixty_four = PyLong_FromLong(64);
    PyObject *out = NULL, *shifted = NULL;
    if (hi && lo && sixty_four && (shifted = PyNumber_Lshift(hi, sixty_four)) != NULL) {
        out = PyNumber_Or(shifted, lo);
    }
    Py_XDECREF(hi);
    Py_XDECREF(lo);
    Py_XDECREF(sixty_four);
    Py_XDECREF(shifted);
    return out;
}

PyObject *hdr_record(PyObject *mod, PyObject *args) {
    PyObject *counts_obj, *values_obj;
    int unit, shift;
    unsigned long long mask, half, highest;
    double scale;
    if (!PyArg_ParseTuple(args, "OO(iiKKKd)", &counts_obj, &values_obj, &unit, &shift, &mask, &half,
                          &highest, &scale))
        return NULL;
    Py_buffer counts;
    if (PyObject_GetBuffer(counts_obj, &counts, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (counts.itemsize != 8 || counts.len % 8) {
        PyBuffer_Release(&counts);
        PyErr_SetString(PyExc_TypeError, "counts must be an array of 64-bit counts");
        return NULL;
    }
    unsigned long long *slots = counts.buf;
    Py_ssize_t n_slots = counts.len / 8;

    Py_buffer vbuf;
    int have_vbuf = 0;
    PyObject *seq = NULL;
    const double *direct = NULL;
    Py_ssize_t n;
    if (PyObject_CheckBuffer(values_obj)
        && PyObject_GetBuffer(values_obj, &vbuf, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) == 0) {
        have_vbuf = 1;
        if (vbuf.format == NULL || strcmp(vbuf.format, "d") != 0 || vbuf.itemsize != 8) {
            PyBuffer_Release(&vbuf);
            PyBuffer_Release(&counts);
            PyErr_SetString(PyExc_TypeError, "values must be doubles");
            return NULL;
        }
        direct = vbuf.buf;
        n = vbuf.len / 8;
    } else {
        PyErr_Clear();
        seq = PySequence_Fast(values_obj, "values must be a sequence of numbers");
        if (seq == NULL) {
            PyBuffer_Release(&counts);
            return NULL;
        }
        n = PySequence_Fast_GET_SIZE(seq);
    }
    PyObject **items = seq ? PySequence_Fast_ITEMS(seq) : NULL;
    unsigned long long lo = ~0ULL, hi = 0;
    unsigned __int128 sum = 0, sum_sq = 0;
    double vmin = 0.0, vmax = 0.0;
    PyObject *result = NULL;
    int base = unit + shift + 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        double v;
        if (direct) {
            v = direct[i];
        } else {
            v = PyFloat_AsDouble(items[i]);
            if (v == -1.0 && PyErr_Occurred()) goto done;
        }
        double clamped = v > 0.0 ? v : 0.0;
        if (i == 0 || clamped < vmin) vmin = clamped;
        if (i == 0 || clamped > vmax) vmax = clamped;
        unsigned long long units = 0;
        if (v > 0.0) {
            double x = v * scale + 0.5;
            units = x >= (double)highest ? highest : (unsigned long long)x;
        }
        int bits = 64 - __builtin_clzll(units | mask);
        int bucket = bits - base;
        long long index = ((long long)(bucket + 1) << shift) + (long long)(units >> (bucket + unit)) - (long long)half;
        if (index < 0 || index >= n_slots) {
            PyErr_SetString(PyExc_IndexError, "value outside the histogram's range");
            goto done;
        }
        slots[index]++;
        if (units < lo) lo = units;
        if (units > hi) hi = units;
        sum += units;
        sum_sq += (unsigned __int128)units * units;
    }
    {
        PyObject *s = u128(sum), *sq = u128(sum_sq);
        if (s && sq) {
            result = Py_BuildValue("(nKKNNdd)", n, n ? lo : 0ULL, hi, s, sq, vmin, vmax);
        } else {
            Py_XDECREF(s);
            Py_XDECREF(sq);
        }
    }
done:
    if (have_vbuf) PyBuffer_Release(&vbuf);
    Py_XDECREF(seq);
    PyBuffer_Release(&counts);
    return result;
}
