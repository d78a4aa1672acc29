/* Progress bar with rate and ETA. */
#include "core/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double wk_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void draw(const wk_progress *p, double now) {
    double frac = p->total ? (double)p->done / (double)p->total : 1.0;
    int width = 30, filled = (int)(frac * width);
    double elapsed = now - p->started;
    double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
    fprintf(stderr, "\r%s [", p->label);
    for (int i = 0; i < width; i++) fputc(i < filled ? '#' : '.', stderr);
    fprintf(stderr, "] %zu/%zu  %.1fs elapsed, eta %.1fs ", p->done, p->total, elapsed, eta);
    fflush(stderr);
}

void wk_progress_start(wk_progress *p, const char *label, size_t total) {
    p->label = label;
    p->total = total;
    p->done = 0;
    p->started = p->last_draw = wk_now_s();
    p->tty = isatty(2);
}

void wk_progress_step(wk_progress *p, size_t n) {
    p->done += n;
    if (!p->tty) return;
    double now = wk_now_s();
    if (now - p->last_draw < 0.1) return;
    p->last_draw = now;
    draw(p, now);
}

void wk_progress_finish(wk_progress *p) {
    double now = wk_now_s();
    if (p->tty) {
        draw(p, now);
        fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: %zu/%zu done in %.1fs\n", p->label, p->done, p->total, now - p->started);
    }
}
