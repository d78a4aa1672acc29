#include "core/parallel.h"

#include <pthread.h>
#include <unistd.h>

enum { MAX_THREADS = 64 };

typedef struct {
    int n, next, failed;
    pthread_mutex_t lock;
    int (*job)(void *ctx, int i, wk_err *err);
    void *ctx;
    wk_err err;
} pool;

static void *pool_worker(void *arg) {
    pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        int i = p->failed ? p->n : p->next++;
        pthread_mutex_unlock(&p->lock);
        if (i >= p->n) return NULL;
        wk_err err = {0};
        if (p->job(p->ctx, i, &err)) {
            pthread_mutex_lock(&p->lock);
            if (!p->failed) p->err = err;
            p->failed = 1;
            pthread_mutex_unlock(&p->lock);
        }
    }
}

int wk_parallel_for(int n, int max_threads, int (*job)(void *ctx, int i, wk_err *err), void *ctx, wk_err *err) {
    pool p = {.n = n, .job = job, .ctx = ctx};
    pthread_mutex_init(&p.lock, NULL);
    long want = max_threads > 0 ? max_threads : sysconf(_SC_NPROCESSORS_ONLN);
    int nt = want < 1 ? 1 : want > MAX_THREADS ? MAX_THREADS : (int)want;
    pthread_t th[MAX_THREADS];
    int started = 0;
    for (; started < nt && started < n; started++)
        if (pthread_create(&th[started], NULL, pool_worker, &p)) break;
    if (started == 0) pool_worker(&p); /* no thread could start: the caller does the work */
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    pthread_mutex_destroy(&p.lock);
    if (p.failed && err) *err = p.err;
    return p.failed ? p.err.code : 0;
}
