/* `wikv study`: the default what-if study over the bundled traces: every policy, a Jetson and a
 * laptop, Llama-3.1-8B at 8K context. Ends with a table, a database and a TTFT CDF plot. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/sim_options.h"

static const char *usage =
    "usage: wikv study [--out DIR] [sim options]\n"
    "Runs the default what-if study: all policies x the bundled traces (traces/) x jetson-agx-orin and\n"
    "rtx5080-laptop x llama-3.1-8b at 8192 tokens, 20 requests per trace. Writes DIR/results.db (default\n"
    "DIR = results) and prints the summary table; every `wikv sim` option overrides its default.\n";

int wk_cmd_study(int argc, char **argv) {
    const char *out = "results";
    /* --out is study-specific: take it out before the shared parser sees the rest */
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
        else argv[kept++] = argv[i];
    }
    argc = kept;
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "wikv: cannot create %s: %s\n", out, strerror(errno));
        return 1;
    }
    char db_path[4096], traces[4096];
    snprintf(db_path, sizeof db_path, "%s/results.db", out);
    snprintf(traces, sizeof traces, "%s/traces", wk_data_dir());
    wk_sim_options o;
    memset(&o, 0, sizeof o);
    o.db_path = db_path;
    o.cfg.requests_per_trace = 20;
    o.cfg.output_tokens = 1;
    o.cfg.task = "none";
    o.cfg.link = wk_link_defaults();
    o.cfg.events = WK_EVENTS_FIRST;
    o.cfg.progress = 1;
    o.contexts[0] = 8192;
    o.n_contexts = 1;
    wk_strlist_add(&o.models, "llama-3.1-8b");
    wk_strlist_add_csv(&o.devices, "jetson-agx-orin,rtx5080-laptop");
    for (const wk_policy_ops *const *p = wk_policy_registry(); *p; p++) wk_strlist_add(&o.policies, (*p)->name);
    int rc = wk_sim_options_parse(&o, argc, argv, usage);
    int helped = rc == 1;
    if (rc == 0 && o.traces.n == 0 && wk_strlist_add_traces(&o.traces, traces)) {
        fprintf(stderr, "wikv: no bundled traces in %s (run `make traces`)\n", traces);
        rc = 1;
    }
    if (rc == 0) {
        char command[2048];
        wk_cli_command_line(argc, argv, "wikv study", command, sizeof command);
        rc = wk_sim_options_run(&o, command);
    } else if (helped) {
        rc = 0;
    }
    wk_sim_options_free(&o);
    return rc;
}
