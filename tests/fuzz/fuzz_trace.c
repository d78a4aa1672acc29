/* Fuzz target: all three trace parsers, then the link-time queries on whatever parsed. */
#include <stddef.h>
#include <stdint.h>

#include "net/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const wk_trace_format formats[] = {WK_FMT_AUTO, WK_FMT_MAHIMAHI, WK_FMT_PENSIEVE, WK_FMT_CSV};
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
        wk_trace tr;
        wk_err err;
        if (wk_trace_parse((const char *)data, size, "fuzz", NULL, formats[f], &tr, &err) == 0) {
            (void)wk_trace_time_to_deliver(&tr, 0.5, 123456.0);
            (void)wk_trace_bytes_before(&tr, 7.25);
            wk_trace_stats st;
            if (tr.period_s < 1e5) (void)wk_trace_compute_stats(&tr, &st, &err);
            wk_trace_free(&tr);
        }
    }
    return 0;
}
