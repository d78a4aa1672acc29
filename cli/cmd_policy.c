/* `wikv policy list|show`: the registered policies and their parameters, from each policy's own
 * parameter table (sim/policy.h), so what is listed is exactly what a spec string accepts. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "sim/policy.h"

static const char *usage = "usage: wikv policy list              policies, their summaries and parameter names\n"
                           "       wikv policy show NAME         parameters: type, range, default, help\n"
                           "A policy is written NAME or NAME:key=value,key=value (e.g. in --policy).\n";

static int policy_list(void) {
    printf("%-14s %s\n", "policy", "summary / parameters");
    for (const wk_policy_ops *const *p = wk_policy_registry(); *p; p++) {
        printf("%-14s %s\n", (*p)->name, (*p)->summary ? (*p)->summary : "");
        printf("%-14s", "");
        if ((*p)->n_params == 0) printf(" (no parameters)");
        for (size_t i = 0; i < (*p)->n_params; i++) printf(" %s=%g", (*p)->params[i].name, (*p)->params[i].def);
        printf("\n");
    }
    return 0;
}

static int policy_show(const char *name) {
    const wk_policy_ops *ops = wk_policy_find(name);
    if (!ops) {
        fprintf(stderr, "wikv policy: unknown policy \"%s\" (wikv policy list shows them)\n", name);
        return 2;
    }
    printf("%s: %s\n", ops->name, ops->summary ? ops->summary : "");
    if (ops->n_params == 0) {
        printf("no parameters\n");
        return 0;
    }
    printf("%-16s %-6s %-24s %-12s %s\n", "parameter", "type", "range", "default", "help");
    for (size_t i = 0; i < ops->n_params; i++) {
        const wk_param_desc *d = &ops->params[i];
        char range[64], def[32];
        if (d->is_int) {
            snprintf(range, sizeof range, "[%.0f, %.0f]", d->min, d->max);
            snprintf(def, sizeof def, "%.0f", d->def);
        } else {
            snprintf(range, sizeof range, "[%g, %g]", d->min, d->max);
            snprintf(def, sizeof def, "%g", d->def);
        }
        printf("%-16s %-6s %-24s %-12s %s\n", d->name, d->is_int ? "int" : "real", range, def, d->help ? d->help : "");
    }
    return 0;
}

int wk_cmd_policy(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "list") == 0) return policy_list();
    if (argc == 3 && strcmp(argv[1], "show") == 0) return policy_show(argv[2]);
    int help = argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    fputs(usage, help ? stdout : stderr);
    return help ? 0 : 2;
}
