/* Synthetic bandwidth traces: Markov-modulated capacity processes, deterministic by seed.
 *
 * The model: a Markov chain over a few link states (e.g. line-of-sight / blocked). Each state has a
 * mean rate, a spread (coefficient of variation of the fast fading around that mean) and a dwell time
 * (exponential with a floor). On leaving a state the next one is drawn from that state's transition row.
 * Inside a state the rate is mean * lognormal(AR(1) noise): the AR(1) coefficient gives the sample to
 * sample correlation of fading, so a 100 ms grid does not look like white noise. Every sample is rounded
 * to 0.01 Mbit/s, so a libm whose exp/log differ from glibc's in the last bit changes a file only if a
 * sample lands within ~1e-13 of a rounding boundary: files from the same seed are portable in practice.
 *
 * Parameter sets (WK_GEN_* below). Means and spreads are calibrated to the published measurements named
 * with each; the reference statistics of the public traces beside the project (traces-public/
 * PROVENANCE.md: Mahimahi LTE driving traces with means 5-13 Mbit/s and CoV 0.56-0.78; 5Gophers mmWave
 * walking, mean 333 Mbit/s, CoV 0.82) are the calibration targets for the mobile models.
 *
 *  wifi-static      802.11ax, 2x2 MIMO, 80 MHz, station a few metres from the AP in the same room. The
 *                   PHY rate at MCS 11 is 1201 Mbit/s; single-flow UDP goodput after MAC overhead and
 *                   aggregation is typically 55-65% of it (~600-700 Mbit/s). States: clear channel,
 *                   co-channel contention from neighbouring BSSs (airtime shared, ~2/3 of the rate),
 *                   short interference dips (microwave ovens, bursts from neighbours: ~0.3 s).
 *                   Expected mean 480-680 Mbit/s.
 *  wifi-walk        the same AP, a user walking at ~1 m/s through rooms: rate follows distance and
 *                   walls (rate adaptation steps MCS down from 1024-QAM to QPSK as SNR falls ~3 dB per
 *                   step). States near / mid / far / behind-walls, moving only to neighbours, dwell of
 *                   a few seconds (a few metres at walking pace). Expected mean 150-450 Mbit/s.
 *  lte-static       LTE, 20 MHz, 2x2 MIMO (Cat 4-6), indoor, not moving: peak ~150 Mbit/s, but cell
 *                   load and indoor loss leave 20-60 Mbit/s; states follow cell load (light / normal /
 *                   busy hour). Expected mean 20-50 Mbit/s.
 *  lte-driving      LTE in a car: fast fading (low AR correlation, CoV ~0.5 per state), cell-edge
 *                   periods and handovers (interruption of tens to a few hundred ms, longer on radio
 *                   link failure). Calibrated to the Mahimahi LTE driving traces (mean 5-13 Mbit/s,
 *                   CoV 0.56-0.78). Expected mean 6-20 Mbit/s.
 *  mmwave-blockage  5G NR FR2 (28/39 GHz, 400 MHz carrier). Line of sight gives ~700-1000 Mbit/s to one
 *                   UE; a body or vehicle in the path costs 20-30 dB, i.e. a deep drop (a few Mbit/s or
 *                   beam re-acquisition) lasting hundreds of ms to seconds, then recovery through a
 *                   reflected beam at a few hundred Mbit/s. Calibrated to the 5Gophers walking trace
 *                   (mean 333 Mbit/s, CoV 0.82) but with a longer line-of-sight share so that mean is
 *                   ~400-600. Expected mean 300-750 Mbit/s.
 */
#ifndef WIKV_NET_TRACE_GEN_H
#define WIKV_NET_TRACE_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/rng.h"
#include "net/trace.h"


#define WK_GEN_MAX_STATES 6

typedef struct {
    const char *name;
    double mean_mbps;     /* mean rate while in this state */
    double spread;        /* coefficient of variation of the fading inside the state */
    double dwell_mean_s;  /* mean dwell (exponential part) */
    double dwell_min_s;   /* shortest dwell: a state is never left before this */
    double next[WK_GEN_MAX_STATES]; /* transition weights on leaving (self weight ignored) */
} wk_gen_state;

typedef struct {
    const char *name;
    size_t n_states;
    wk_gen_state states[WK_GEN_MAX_STATES];
    double dt_s;            /* sample interval (<= 0.1 s) */
    double fading_corr;     /* AR(1) coefficient of the log-fading per sample */
    double max_mbps;        /* clamp (PHY ceiling) */
    double expect_lo_mbps;  /* range the mean of a 60-120 s trace is expected in (tests check it) */
    double expect_hi_mbps;
} wk_gen_model;

/* The built-in parameter sets; NULL if the name is unknown. */
const wk_gen_model *wk_gen_model_find(const char *name);
size_t wk_gen_model_count(void);
const wk_gen_model *wk_gen_model_at(size_t i);

typedef struct {
    double seconds;  /* trace length */
    uint64_t seed;
    double scale;    /* multiplies every rate (tests use small scales); 0 means 1 */
} wk_gen_options;

/* Checks a model's parameters (custom models): states, dwell times, transition rows, dt. */
int wk_gen_model_check(const wk_gen_model *m, wk_err *err);

/* Generates a CAPACITY trace named "<model>-<seconds>s-seed<N>", one segment per dt. Also returns
 * the state index of every sample when states_out is not NULL (caller frees; [n] with n = tr->n). */
int wk_gen_trace(const wk_gen_model *m, const wk_gen_options *opt, wk_trace *tr, uint8_t **states_out,
                 wk_err *err);

#endif
