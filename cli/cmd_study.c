/* `wikv study`: the default what-if study over the bundled traces: every policy, a Jetson and a
 * laptop, Llama-3.1-8B at 8K context. Ends with a table, a database and a TTFT CDF plot. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/sim_options.h"
#include "plots/plot.h"

/* The study's figures: per device, the TTFT CDF and TTFT against bandwidth of this run. */
static int study_plots(const char *out, const char *db_path, int64_t run_id, const wk_strlist *devices) {
    static const wk_plot_kind kinds[] = {WK_PLOT_TTFT_CDF, WK_PLOT_TTFT_VS_BW};
    int status = 0;
    for (size_t d = 0; d < devices->n; d++)
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            wk_plot_filter f = {0};
            f.run_id = run_id;
            f.device = devices->items[d];
            wk_plot_opts opts = {0};
            opts.log_x = 1; /* TTFTs and bandwidths both span orders of magnitude */
            opts.log_y = kinds[k] == WK_PLOT_TTFT_VS_BW;
            char fig[4096];
            snprintf(fig, sizeof fig, "%s/%s-%s.png", out, wk_plot_kind_name(kinds[k]), devices->items[d]);
            wk_plot_result res;
            wk_err err = {0};
            if (wk_plot_file(db_path, kinds[k], &f, &opts, fig, &res, &err)) {
                fprintf(stderr, "wikv: plot: %s\n", err.msg);
                status = 1;
            } else {
                printf("figure: %s (data %s)\n", res.fig, res.data);
            }
        }
    return status;
}

static const char *usage =
    "usage: wikv study [--out DIR] [sim options]\n"
    "Runs the default what-if study: prefill, full, kivi2, kivi4, cachegen, wikv and hybrid x the bundled\n"
    "traces (traces/) x jetson-agx-orin and\n"
    "rtx5080-laptop x llama-3.1-8b at 8192 tokens, 20 requests per trace. Writes DIR/results.db (default\n"
    "DIR = results), prints the summary table and draws DIR/ttft-cdf-DEVICE.png and DIR/ttft-vs-bw-DEVICE.png\n"
    "(with their data files); every `wikv sim` option overrides its default.\n";

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
    wk_sim_options_defaults(&o, db_path, 20);
    wk_strlist_add_csv(&o.devices, "jetson-agx-orin,rtx5080-laptop");
    wk_strlist_add_csv(&o.policies, "prefill,full,kivi2,kivi4,cachegen,wikv,hybrid");
    int rc = wk_sim_options_parse(&o, argc, argv, usage);
    int helped = rc == 1;
    if (rc == 0 && o.traces.n == 0 && wk_strlist_add_traces(&o.traces, traces)) {
        fprintf(stderr, "wikv: no bundled traces in %s (run `make traces`)\n", traces);
        rc = 1;
    }
    if (rc == 0) {
        char command[2048];
        wk_cli_command_line(argc, argv, "wikv study", command, sizeof command);
        int64_t run_id = 0;
        rc = wk_sim_options_run(&o, command, &run_id);
        if (rc == 0) rc = study_plots(out, db_path, run_id, &o.devices);
    } else if (helped) {
        rc = 0;
    }
    wk_sim_options_free(&o);
    return rc;
}
