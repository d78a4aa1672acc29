/* `wikv model list|show`: bundled model specs and device profiles, with what follows from them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "models/device.h"

static int model_list(void) {
    char names[2048];
    wk_model_spec_list(names, sizeof names);
    printf("models:  %s\n", names);
    wk_device_list(names, sizeof names);
    printf("devices: %s\n", names);
    return 0;
}

static int model_show(const char *name, const char *device, int context) {
    wk_model_spec m;
    wk_err err = {0};
    if (wk_model_spec_find(name, &m, &err)) {
        fprintf(stderr, "wikv: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    printf("%s (%s): %d layers, hidden %d, %d heads, %d KV heads, head_dim %d, intermediate %d, vocab %d\n", m.name,
           m.arch, m.n_layers, m.hidden, m.n_heads, m.n_kv_heads, m.head_dim, m.intermediate, m.vocab);
    printf("parameters: %.3f B\n", wk_model_params_total(&m) / 1e9);
    printf("KV bytes per token: fp16 %.0f, 8-bit %.0f, 4-bit %.0f, 2-bit %.0f (values only)\n",
           wk_model_kv_bytes_per_token(&m, 16), wk_model_kv_bytes_per_token(&m, 8), wk_model_kv_bytes_per_token(&m, 4),
           wk_model_kv_bytes_per_token(&m, 2));
    if (!device) return 0;
    wk_device d;
    if (wk_device_find(device, &d, &err)) {
        fprintf(stderr, "wikv: %s\n", err.msg);
        return wk_err_exit_status(&err);
    }
    printf("on %s (roofline): prefill of %d tokens %.3f s, decode step at %d tokens %.2f ms\n", d.name, context,
           wk_device_prefill_s(&d, &m, context, 0), context,
           1e3 * wk_device_decode_s(&d, &m, context, wk_model_kv_bytes_per_token(&m, 16)));
    return 0;
}

int wk_cmd_model(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "list") == 0) return model_list();
    if (argc >= 3 && strcmp(argv[1], "show") == 0) {
        const char *device = argc >= 4 ? argv[3] : NULL;
        int context = argc >= 5 ? atoi(argv[4]) : 8192;
        if (context <= 0) context = 8192;
        return model_show(argv[2], device, context);
    }
    int help = argc >= 2 && strcmp(argv[1], "--help") == 0;
    fprintf(help ? stdout : stderr,
            "usage: wikv model list\n"
            "       wikv model show MODEL [DEVICE [CONTEXT]]   shape, KV bytes per token, roofline step times\n");
    return help ? 0 : 2;
}
