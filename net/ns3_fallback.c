/* The ns-3 entry points when this build has no ns-3 (the C++ shim is not compiled): callers can
 * always link and tell the user how to get it. */
#include "net/ns3/ns3_shim.h"

#ifndef WIKV_HAVE_NS3
int wk_ns3_available(void) { return 0; }

int wk_ns3_run(const char *scenario, double seconds, uint32_t seed, wk_trace *tr, wk_err *err) {
    (void)seconds;
    (void)seed;
    (void)tr;
    return wk_err_set(err, WK_EUNSUPPORTED, "ns-3 scenario '%s': wikv was built without ns-3 (install libns3-dev "
                                            "and libgsl-dev, then rebuild)", scenario ? scenario : "?");
}
#else
/* ISO C forbids an empty translation unit. */
typedef int wk_ns3_fallback_unused;
#endif
