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

/* A link shared by several senders (devices behind one access point): one trace whose capacity the
 * senders with bytes in flight share fairly. The model is net/shared_link.h's processor sharing, on
 * the wall clock since wk_paced_link_open (the trace starts then and loops): each attached sender is
 * one flow, bytes it queues while its flow is busy follow back to back, and a flow that has nothing
 * queued leaves its share to the others. Writers release each flow's bytes as the model delivers them
 * (plus the sender's one-way delay), checking it every millisecond. Thread-safe. */
typedef struct wk_paced_link wk_paced_link;
/* max_flows: senders attached at once; one more is refused (WK_ESTATE). The trace is borrowed. */
int wk_paced_link_open(const wk_trace *trace, size_t max_flows, wk_paced_link **out, wk_err *err);
/* Frees the link; every sender on it must have stopped. */
void wk_paced_link_free(wk_paced_link *l);

typedef struct {
    const wk_trace *trace; /* borrowed: must outlive the sender; ignored with `shared` */
    double delay_s;        /* one-way delay added to every byte */
    double trace_offset_s; /* link time at start (start the trace part-way in); ignored with `shared` */
    wk_paced_link *shared; /* NULL: a link of its own over `trace`; else one flow of that shared link */
    double send_timeout_s; /* > 0: the writer fails when the peer takes no byte for this long (a reader
                              that stopped reading); 0: it waits as long as the sender runs */
} wk_paced_config;

typedef struct wk_paced_sender wk_paced_sender;

/* Starts the writer thread on fd (a connected socket; not closed by the sender). With cfg->shared it
 * takes a flow of that link, or fails with WK_ESTATE when all are taken. */
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
/* Bytes queued so far (total since start). */
uint64_t wk_paced_bytes_queued(wk_paced_sender *s);
/* Waits until the link model has delivered the first `bytes` queued bytes at its bottleneck (link
 * time, before the one-way delay), or timeout_s passes (WK_ESTATE): when a sender that keeps one unit
 * queued ahead hands over the next, as the simulator's sender does when the pipe frees. */
int wk_paced_wait_delivered(wk_paced_sender *s, uint64_t bytes, double timeout_s, wk_err *err);
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
