/* Fuzz target: the LongBench jsonl reader with each requirement set, then every metric on what
 * parsed (pred or context against each answer), and prompt formatting with the read fields. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "exec/longbench.h"
#include "exec/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const unsigned needs[] = {0, WK_LB_NEED_CONTEXT | WK_LB_NEED_ANSWERS, WK_LB_NEED_PRED | WK_LB_NEED_ANSWERS};
    for (size_t k = 0; k < sizeof needs / sizeof needs[0]; k++) {
        wk_lb_set set;
        wk_err err;
        if (wk_longbench_parse((const char *)data, size, "fuzz", needs[k], &set, &err) != 0) continue;
        for (size_t i = 0; i < set.count && i < 4; i++) {
            const wk_lb_item *it = &set.items[i];
            const char *pred = it->pred ? it->pred : it->input ? it->input : "";
            for (int m = 0; m < WK_METRIC_KINDS; m++) {
                double v;
                (void)wk_metric_score_sample((wk_metric)m, it->dataset, pred, (const char *const *)it->answers,
                                             it->n_answers, (const char *const *)it->all_classes, it->n_classes, &v,
                                             &err);
            }
            const char *tmpl = wk_longbench_template(it->dataset);
            char *prompt;
            if (wk_longbench_format(tmpl ? tmpl : (it->id ? it->id : "{context}"), it->context ? it->context : "",
                                    it->input ? it->input : "", &prompt, &err) == 0)
                free(prompt);
        }
        wk_longbench_free(&set);
    }
    return 0;
}
