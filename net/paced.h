/* Paced transport: sends bytes over a TCP socket no faster than a bandwidth trace allows, plus a
 * one-way delay, without root or tc. Used by the real-execution server; agrees with the simulator
 * because both use the same link model (wk_trace_time_to_deliver).
 *
 * The link model is a FIFO over the trace: a busy period starts when bytes are queued while the link
 * is idle, at link time b; byte x (1-based) of that period is delivered at wk_trace_time_to_deliver(
 * trace, b, x) and becomes readable at the receiver at that time + delay. A writer thread owns the
 * socket and writes each byte at (about, <= 0.5 ms late) that instant, never earlier. For Mahimahi
 * traces this is 1500 bytes per listed millisecond; for capacity traces the trace's rate.
 *
 * Link time is seconds since wk_paced_sender_start (plus trace_offset_s), CLOCK_MONOTONIC.
 *
 * The receiving side (wk_paced_receiver) reads whole wire frames (net/wire.h) with a timeout; a
 * garbage or truncated frame is an error naming the field, and closes that connection only. */
#ifndef WIKV_NET_PACED_H
#define WIKV_NET_PACED_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/trace.h"
#include "net/wire.h"

typedef struct {
    const wk_trace *trace; /* borrowed: must outlive the sender */
    double delay_s;        /* one-way delay added to every byte */
    double trace_offset_s; /* link time at start (start the trace part-way in) */
} wk_paced_config;

typedef struct wk_paced_sender wk_paced_sender;

/* Starts the writer thread on fd (a connected socket; not closed by the sender). */
int wk_paced_sender_start(int fd, const wk_paced_config *cfg, wk_paced_sender **out, wk_err *err);
/* Queues a copy of buf[len]; returns at once. Fails if the writer has failed (peer gone). */
int wk_paced_send(wk_paced_sender *s, const void *buf, size_t len, wk_err *err);
/* Encodes m (stamping send_time_us with wk_paced_clock_us()) and queues it. */
int wk_paced_send_msg(wk_paced_sender *s, wk_wire_msg *m, wk_err *err);
/* Waits until every queued byte has been written to the socket, or timeout_s passes (WK_ESTATE). */
int wk_paced_drain(wk_paced_sender *s, double timeout_s, wk_err *err);
/* Link time now, seconds. */
double wk_paced_now(const wk_paced_sender *s);
/* Bytes written to the socket so far. */
uint64_t wk_paced_bytes_written(wk_paced_sender *s);
/* Stops the writer (dropping what is still queued) and frees the sender. Returns the writer's
 * error if it had one. */
int wk_paced_sender_stop(wk_paced_sender *s, wk_err *err);

/* CLOCK_MONOTONIC in microseconds (the clock of send_time_us). */
uint64_t wk_paced_clock_us(void);

typedef struct {
    int fd;          /* -1 once closed */
    uint8_t *buf;    /* [cap] the frame being read; decoded unit data points into it */
    size_t cap;
    uint64_t bytes_read;
    /* called after every read() with the total bytes read so far (delivery curves) */
    void (*on_read)(void *ctx, uint64_t bytes_read);
    void *ctx;
} wk_paced_receiver;

void wk_paced_receiver_init(wk_paced_receiver *r, int fd);
/* Reads and decodes one whole frame within timeout_s. A malformed or truncated frame returns
 * WK_EFORMAT and closes the connection; a clean close by the peer between frames returns WK_ESTATE
 * ("connection closed"), a timeout WK_EIO. m's unit data stays valid until the next call. */
int wk_paced_recv(wk_paced_receiver *r, wk_wire_msg *m, double timeout_s, wk_err *err);
/* Closes the connection (if open) and frees the buffer. */
void wk_paced_receiver_free(wk_paced_receiver *r);

/* TCP helpers: listen on host:port (port 0: any free port, returned in *bound_port), accept and
 * connect with timeouts. Sockets get TCP_NODELAY so small frames are not held back. */
int wk_paced_listen(const char *host, uint16_t port, int *fd, uint16_t *bound_port, wk_err *err);
int wk_paced_accept(int listen_fd, double timeout_s, int *fd, wk_err *err);
int wk_paced_connect(const char *host, uint16_t port, double timeout_s, int *fd, wk_err *err);

#endif
