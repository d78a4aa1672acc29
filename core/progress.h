/* A progress bar on stderr for long work: redrawn at most 10 times a second, and only when stderr
 * is a terminal (logs of batch jobs stay clean; a final line is always printed). */
#ifndef WIKV_CORE_PROGRESS_H
#define WIKV_CORE_PROGRESS_H

#include <stddef.h>

typedef struct wk_progress {
    const char *label;
    size_t total, done;
    double started, last_draw;
    int tty;
} wk_progress;

void wk_progress_start(wk_progress *p, const char *label, size_t total);
void wk_progress_step(wk_progress *p, size_t n);
void wk_progress_finish(wk_progress *p);
/* Monotonic seconds. */
double wk_now_s(void);

#endif
