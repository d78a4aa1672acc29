/* Error reporting for every wikv module: functions return 0 or a negative WK_E* code and fill a
 * wk_err whose message names the file, field or offset at fault, so the caller can print it as is. */
#ifndef WIKV_CORE_ERR_H
#define WIKV_CORE_ERR_H

enum {
    WK_OK = 0,
    WK_EINVAL = -1,       /* bad argument or option */
    WK_EFORMAT = -2,      /* malformed input file or frame */
    WK_EIO = -3,          /* read/write/socket failure */
    WK_ENOMEM = -4,       /* allocation failed */
    WK_ENOTFOUND = -5,    /* named thing does not exist */
    WK_EDB = -6,          /* SQLite failure */
    WK_EUNSUPPORTED = -7, /* valid but not supported (yet) */
    WK_ESTATE = -8        /* operation not valid in the current state */
};

typedef struct wk_err {
    int code;
    char msg[1024];
} wk_err;

/* Fills err (if not NULL) and returns code, so callers can write `return wk_err_set(...)`. */
int wk_err_set(wk_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to an existing message (adds context while unwinding). Returns err->code. */
int wk_err_prefix(wk_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wk_err_clear(wk_err *err);
/* Exit status for a command-line failure: 2 for bad input (format/argument), 1 otherwise. */
int wk_err_exit_status(const wk_err *err);
const char *wk_err_name(int code);

#endif
