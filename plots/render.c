/* The plot entry point: picks the kind from a table, derives FIG.tsv and FIG.gp from the figure path,
 * lets the kind write both, then runs gnuplot as a child process in the figure's folder (so the
 * script names its files relatively and can be re-run there) and checks that the figure exists. */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plots/plot.h"

typedef int (*kind_fn)(sqlite3 *, const char *, const wk_plot_filter *, wk_plot_out *, wk_err *);

static const struct {
    const char *name;
    kind_fn fn;
    const char *summary;
} kinds[WK_PLOT_KIND_COUNT] = {
    [WK_PLOT_TTFT_CDF] = {"ttft-cdf", wk_plot_ttft_cdf, "CDF of TTFT per policy"},
    [WK_PLOT_TTFT_VS_BW] = {"ttft-vs-bw", wk_plot_ttft_vs_bw,
                            "TTFT against mean link bandwidth per policy (median, p5-p95 per trace)"},
    [WK_PLOT_QUALITY_LATENCY] = {"quality-latency", wk_plot_quality_latency,
                                 "F1 against TTFT, one point per policy (median, p25-p75 bars)"},
    [WK_PLOT_TIMELINE] = {"timeline", wk_plot_timeline,
                          "one request: bytes by level, KV usable, tokens, compute over time"},
    [WK_PLOT_TRACE] = {"trace", wk_plot_trace, "bandwidth over time of traces"},
    [WK_PLOT_SIM_VS_EXEC] = {"sim-vs-exec", wk_plot_sim_vs_exec, "simulated against measured TTFT, with y = x"},
    [WK_PLOT_BREAKDOWN] = {"breakdown", wk_plot_breakdown,
                           "TTFT split into network wait, KV decode, compute per policy (medians)"},
    [WK_PLOT_PARETO] = {"pareto", wk_plot_pareto, "F1 against TTFT of every configuration, Pareto front"},
};

int wk_plot_kind_from_name(const char *name) {
    for (int i = 0; name && i < WK_PLOT_KIND_COUNT; i++)
        if (strcmp(kinds[i].name, name) == 0) return i;
    return -1;
}

const char *wk_plot_kind_name(wk_plot_kind kind) { return (unsigned)kind < WK_PLOT_KIND_COUNT ? kinds[kind].name : "?"; }

const char *wk_plot_kind_summary(wk_plot_kind kind) {
    return (unsigned)kind < WK_PLOT_KIND_COUNT ? kinds[kind].summary : "?";
}

/* FIG.ext -> format, FIG.tsv, FIG.gp, folder and base names. */
static int derive_paths(const char *fig, wk_plot_out *o, wk_err *err) {
    const char *dot = strrchr(fig, '.');
    const char *slash = strrchr(fig, '/');
    if (!dot || (slash && dot < slash) || dot == (slash ? slash + 1 : fig))
        return wk_err_set(err, WK_EINVAL, "%s: the figure name needs an extension .png, .pdf or .svg", fig);
    if (strcmp(dot, ".png") == 0) o->format = WK_PLOT_PNG;
    else if (strcmp(dot, ".pdf") == 0) o->format = WK_PLOT_PDF;
    else if (strcmp(dot, ".svg") == 0) o->format = WK_PLOT_SVG;
    else return wk_err_set(err, WK_EINVAL, "%s: unknown figure format '%s' (use .png, .pdf or .svg)", fig, dot);
    size_t stem = (size_t)(dot - fig);
    if (stem + 8 > sizeof o->fig) return wk_err_set(err, WK_EINVAL, "%s: path too long", fig);
    snprintf(o->fig, sizeof o->fig, "%s", fig);
    snprintf(o->data, sizeof o->data, "%.*s.tsv", (int)stem, fig);
    snprintf(o->script, sizeof o->script, "%.*s.gp", (int)stem, fig);
    if (slash) snprintf(o->dir, sizeof o->dir, "%.*s", slash == fig ? 1 : (int)(slash - fig), fig);
    else snprintf(o->dir, sizeof o->dir, ".");
    size_t base = slash ? (size_t)(slash - fig) + 1 : 0;
    o->fig_base = o->fig + base;
    o->data_base = o->data + base;
    o->script_base = o->script + base;
    return 0;
}

static int open_outputs(wk_plot_out *o, wk_err *err) {
    o->dat = fopen(o->data, "w");
    if (!o->dat) return wk_err_set(err, WK_EIO, "%s: cannot write: %s", o->data, strerror(errno));
    o->gp = fopen(o->script, "w");
    if (!o->gp) return wk_err_set(err, WK_EIO, "%s: cannot write: %s", o->script, strerror(errno));
    return 0;
}

static int close_outputs(wk_plot_out *o, wk_err *err) {
    int rc = 0;
    if (o->dat && (ferror(o->dat) | fclose(o->dat)))
        rc = wk_err_set(err, WK_EIO, "%s: write failed: %s", o->data, strerror(errno));
    if (o->gp && (ferror(o->gp) | fclose(o->gp)) && !rc)
        rc = wk_err_set(err, WK_EIO, "%s: write failed: %s", o->script, strerror(errno));
    o->dat = o->gp = NULL;
    return rc;
}

int wk_plot_have_gnuplot(void) {
    const char *path = getenv("PATH");
    if (!path) return 0;
    char buf[4096];
    for (const char *p = path; *p;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0 && n < sizeof buf - 16) {
            snprintf(buf, sizeof buf, "%.*s/gnuplot", (int)n, p);
            if (access(buf, X_OK) == 0) return 1;
        }
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

/* Keeps the last TAIL_CAP - 1 bytes of gnuplot's stderr: its error is at the end. */
enum { TAIL_CAP = 600 };
static void read_tail(int fd, char tail[TAIL_CAP]) {
    size_t len = 0;
    char chunk[256]; /* smaller than TAIL_CAP, so one chunk always fits after dropping old bytes */
    ssize_t got;
    while ((got = read(fd, chunk, sizeof chunk)) != 0) {
        if (got < 0) {
            if (errno == EINTR) continue;
            break;
        }
        size_t g = (size_t)got;
        if (len + g > TAIL_CAP - 1) {
            size_t drop = len + g - (TAIL_CAP - 1);
            memmove(tail, tail + drop, len - drop);
            len -= drop;
        }
        memcpy(tail + len, chunk, g);
        len += g;
    }
    tail[len] = '\0';
}

static int run_gnuplot(const wk_plot_out *o, wk_err *err) {
    if (!wk_plot_have_gnuplot())
        return wk_err_set(err, WK_EUNSUPPORTED, "gnuplot is not on PATH: wrote %s and %s; install gnuplot and run "
                                             "`gnuplot %s` in %s", o->data, o->script, o->script_base, o->dir);
    int pipefd[2];
    if (pipe(pipefd) != 0) return wk_err_set(err, WK_EIO, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return wk_err_set(err, WK_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) { /* child: only async-signal-safe calls until exec */
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        if (chdir(o->dir) != 0) _exit(126);
        execlp("gnuplot", "gnuplot", o->script_base, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    char tail[TAIL_CAP];
    read_tail(pipefd[0], tail);
    close(pipefd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return wk_err_set(err, WK_EIO, "waiting for gnuplot: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return wk_err_set(err, WK_EIO, "gnuplot failed on %s (exit %d): %s", o->script,
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1, tail);
    struct stat sb;
    if (stat(o->fig, &sb) != 0 || sb.st_size == 0)
        return wk_err_set(err, WK_EIO, "gnuplot ran but %s is missing or empty: %s", o->fig, tail);
    return 0;
}

int wk_plot_render(sqlite3 *db, const char *db_path, wk_plot_kind kind, const wk_plot_filter *f,
                   const wk_plot_opts *opts, const char *out_path, wk_plot_result *res, wk_err *err) {
    if ((unsigned)kind >= WK_PLOT_KIND_COUNT) return wk_err_set(err, WK_EINVAL, "unknown plot kind %d", (int)kind);
    static const wk_plot_opts defaults = {0};
    wk_plot_out o;
    memset(&o, 0, sizeof o);
    o.opts = opts ? opts : &defaults;
    int rc = derive_paths(out_path, &o, err);
    if (!rc) rc = open_outputs(&o, err);
    if (!rc) rc = kinds[kind].fn(db, db_path, f, &o, err);
    int crc = close_outputs(&o, rc ? NULL : err);
    if (!rc) rc = crc;
    if (rc) { /* leave no stale data/script that looks like a finished figure */
        unlink(o.data);
        unlink(o.script);
        return rc;
    }
    rc = run_gnuplot(&o, err);
    if (res) {
        memset(res, 0, sizeof *res);
        res->n_series = o.n_series;
        res->n_points = o.n_points;
        snprintf(res->fig, sizeof res->fig, "%s", o.fig);
        snprintf(res->data, sizeof res->data, "%s", o.data);
        snprintf(res->script, sizeof res->script, "%s", o.script);
        snprintf(res->note, sizeof res->note, "%s", o.note);
    }
    return rc;
}

int wk_plot_open_db(const char *db_path, wk_results **out, wk_err *err) {
    struct stat sb;
    if (!db_path || !*db_path) return wk_err_set(err, WK_EINVAL, "no database given (--db FILE)");
    if (stat(db_path, &sb) != 0)
        return wk_err_set(err, errno == ENOENT ? WK_ENOTFOUND : WK_EIO, "%s: cannot open results database: %s",
                          db_path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return wk_err_set(err, WK_EFORMAT, "%s: not a results database (not a file)", db_path);
    /* Check the SQLite header ourselves: opening an empty or foreign file would otherwise turn it into
     * a new database. */
    FILE *fp = fopen(db_path, "rb");
    if (!fp) return wk_err_set(err, WK_EIO, "%s: cannot read results database: %s", db_path, strerror(errno));
    char head[16] = {0};
    size_t got = fread(head, 1, sizeof head, fp);
    fclose(fp);
    if (got != sizeof head || memcmp(head, "SQLite format 3", 16) != 0)
        return wk_err_set(err, WK_EFORMAT, "%s: not a results database (no SQLite header at offset 0)", db_path);
    return wk_results_open(db_path, out, err);
}

int wk_plot_file(const char *db_path, wk_plot_kind kind, const wk_plot_filter *f, const wk_plot_opts *opts,
                 const char *out_path, wk_plot_result *res, wk_err *err) {
    wk_results *db;
    int rc = wk_plot_open_db(db_path, &db, err);
    if (rc) return rc;
    rc = wk_plot_render(wk_results_handle(db), db_path, kind, f, opts, out_path, res, err);
    wk_results_close(db);
    return rc;
}
