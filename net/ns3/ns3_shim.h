/* ns-3 scenarios that produce bandwidth traces (C interface to a C++ shim).
 *
 * The shim (net/ns3/ns3_shim.cc) is built only when pkg-config finds ns-3; otherwise
 * net/ns3_fallback.c provides these functions, wk_ns3_available() returns 0 and wk_ns3_run() fails
 * with WK_EUNSUPPORTED. Scenarios:
 *   wifi-walk       802.11ax station, 5 GHz 80 MHz, Thompson-sampling rate control (MinstrelHt-like;
 *                   see the .cc for why not MinstrelHt itself), saturating UDP downlink from the AP;
 *                   the station walks away from the AP at 1.5 m/s for the first half and back for the
 *                   second.
 *   wifi-walk-away  the same, walking away the whole time.
 *   lte-drive       one eNB, one UE driving past it at 15 m/s (from 420 m before to 480 m after in
 *                   60 s), saturating UDP downlink (needs ns3-lte).
 * Delivered throughput at the station is sampled every 100 ms into a CAPACITY trace. */
#ifndef WIKV_NET_NS3_SHIM_H
#define WIKV_NET_NS3_SHIM_H

#ifdef __cplusplus
extern "C" { /* the C headers below have no guards of their own */
#endif

#include <stdint.h>

#include "core/err.h"
#include "net/trace.h"

#define WK_NS3_SAMPLE_S 0.1

/* 1 when this build has the ns-3 shim. */
int wk_ns3_available(void);
/* Runs `scenario` for `seconds` simulated seconds with ns-3 run number `seed`; fills tr. */
int wk_ns3_run(const char *scenario, double seconds, uint32_t seed, wk_trace *tr, wk_err *err);

#ifdef __cplusplus
}
#endif

#endif
