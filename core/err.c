/* Error messages: formatted once where the fault is seen, prefixed with context on the way up. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int wk_err_set(wk_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int wk_err_prefix(wk_err *err, const char *fmt, ...) {
    if (!err) return WK_EINVAL;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof err->msg - n - 3;
    size_t m = strlen(old);
    if (m > room) m = room;
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = '\0';
    return err->code;
}

void wk_err_clear(wk_err *err) {
    if (!err) return;
    err->code = 0;
    err->msg[0] = '\0';
}

int wk_err_exit_status(const wk_err *err) {
    if (!err) return 1;
    return (err->code == WK_EFORMAT || err->code == WK_EINVAL) ? 2 : 1;
}

const char *wk_err_name(int code) {
    switch (code) {
    case WK_OK: return "ok";
    case WK_EINVAL: return "invalid argument";
    case WK_EFORMAT: return "malformed input";
    case WK_EIO: return "i/o error";
    case WK_ENOMEM: return "out of memory";
    case WK_ENOTFOUND: return "not found";
    case WK_EDB: return "database error";
    case WK_EUNSUPPORTED: return "unsupported";
    case WK_ESTATE: return "invalid state";
    default: return "unknown error";
    }
}
