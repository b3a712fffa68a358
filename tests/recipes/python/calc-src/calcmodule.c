/* Python bindings for libcalc: the extension module `calc`. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "calc.h"

static PyObject *py_add(PyObject *self, PyObject *args) {
    int a, b;
    if (!PyArg_ParseTuple(args, "ii", &a, &b)) {
        return NULL;
    }
    return PyLong_FromLong(calc_add(a, b));
}

static PyMethodDef methods[] = {
    {"add", py_add, METH_VARARGS, "Add two integers with libcalc."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "calc", "libcalc bindings", -1, methods};

PyMODINIT_FUNC PyInit_calc(void) { return PyModule_Create(&module); }
