/* `wikv quality measure`: placeholder until the measurement lands. */
#include <stdio.h>

#include "cli/commands.h"

int wk_cmd_quality(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fputs("wikv quality: not built yet\n", stderr);
    return 2;
}
