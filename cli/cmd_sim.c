/* `wikv sim`: simulate requests on traces and print TTFT per policy. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/sim_options.h"

static const char *usage =
    "usage: wikv sim --trace FILE|FOLDER [--trace ...] [options]\n"
    "Simulates requests and prints TTFT median/p95, bytes sent and link utilisation per policy and trace.\n"
    "  --trace FILE|FOLDER  trace file (PATH#COLUMN for a CSV column), or a folder of traces; repeatable\n"
    "  --policy LIST        policies, e.g. prefill,full,kivi2,kivi4 or kivi2:group=64 (default: all)\n"
    "  --policy-config FILE the policy chosen by `wikv choose` (choice.json); its model, device, context\n"
    "                       and quality table too unless given here\n"
    "  --model LIST         bundled model names or HF config folders (default llama-3.1-8b)\n"
    "  --device LIST        device profiles (default jetson-agx-orin)\n"
    "  --context LIST       context lengths in tokens (default 8192)\n"
    "  --requests N         requests per trace, started at offsets spread over the trace (default 10)\n"
    "  --output-tokens N    tokens generated per request (default 1)\n"
    "  --delay-ms MS        one-way delay each direction (default 10)\n"
    "  --frame-overhead B   header bytes per 1448-byte frame (default 52)\n"
    "  --events none|first|all  store request timelines (default first request of each cell)\n"
    "  --quality FILE       quality table for steps on partial KV (default models/quality/assumed.tsv;\n"
    "                       only a measured table gives sim rows an F1)\n"
    "  --quality-target F   F1 relative to full KV the oracle must reach (default 0.95; 0: no oracle)\n"
    "  --devices-per-link LIST  run each request by N devices sharing one link (fair share of the\n"
    "                       trace), for each N listed, e.g. 1,2,4,8; one row per device, device\n"
    "                       column \"NAME xN\"; prints how TTFT grows with N (default: one device)\n"
    "  --stagger-ms MS      device k of a shared link sends its request k x MS later (default 0)\n"
    "  --db FILE            results database (default results.db)\n"
    "  --no-progress        no progress bar\n";

int wk_cmd_sim(int argc, char **argv) {
    wk_sim_options o;
    wk_sim_options_defaults(&o, "results.db", 10);
    wk_strlist_add(&o.devices, "jetson-agx-orin");
    for (const wk_policy_ops *const *p = wk_policy_registry(); *p; p++) wk_strlist_add(&o.policies, (*p)->name);
    int rc = wk_sim_options_parse(&o, argc, argv, usage);
    if (rc == 0) {
        char command[2048];
        wk_cli_command_line(argc, argv, "wikv", command, sizeof command);
        rc = wk_sim_options_run(&o, command, NULL);
    } else if (rc == 1) {
        rc = 0;
    }
    wk_sim_options_free(&o);
    return rc;
}
