/* `wikv`: one binary, one subcommand per task. The table below is the only place a command is
 * registered. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} wk_command;

static const wk_command commands[] = {
    {"study", wk_cmd_study, "the default what-if study over the bundled traces (table, database, plot)"},
    {"sim", wk_cmd_sim, "simulate requests: TTFT per policy on traces, models and devices"},
    {"trace", wk_cmd_trace, "bandwidth traces: stats, convert, gen, compare, ns3"},
    {"sweep", wk_cmd_sweep, "run a grid file over all cores, resumable, shardable over machines"},
    {"db", wk_cmd_db, "results database: summary, merge"},
    {"model", wk_cmd_model, "model specs and device profiles: list, show"},
    {"task", wk_cmd_task, "synthetic long-context tasks: gen"},
    {"score", wk_cmd_score, "score predictions as LongBench eval.py"},
    {"plot", wk_cmd_plot, "figures from a results database (gnuplot)"},
    {"kv", wk_cmd_kv, "KV tensors: codec stats of a stored tensor, synthetic tensors"},
    {"calibrate", wk_cmd_calibrate, "measure the engine here and fit a device profile to it"},
    {"engine", wk_cmd_engine, "LLM engine (CPU reference): info, generate, attn on a HF model dir"},
    {"policy", wk_cmd_policy, "policies and their parameters: list, show"},
    {"choose", wk_cmd_choose, "search policies and parameters in the simulator; write choice.json"},
    {"serve", wk_cmd_serve, "edge server: stream encoded KV units paced by a trace (real execution)"},
    {"run", wk_cmd_run, "device client: requests against a server, real answers, TTFT and F1"},
    {"kvgen", wk_cmd_kvgen, "prefill task contexts and store their KV for the server"},
    {"validate", wk_cmd_validate, "run a grid in exec and in the simulator; TTFT errors of the simulator"},
    {"quality", wk_cmd_quality, "measure quality tables (F1, confidence test) on partial KV with the engine"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: wikv COMMAND [options]   (wikv COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "wikv: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
