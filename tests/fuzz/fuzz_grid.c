/* Fuzz target: the sweep grid file parser (sim/sweep.h). The input is written to a temporary file
 * because grids are read from paths (relative trace paths resolve against the grid's folder). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sim/sweep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[] = "/tmp/wikv_fuzz_grid_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    wk_grid g;
    wk_err err;
    if (wk_grid_load(path, &g, &err) == 0) {
        wk_runner_config cfg;
        wk_grid_config(&g, &cfg);
        (void)wk_runner_cell_count(&cfg);
        wk_grid_free(&g);
    }
    unlink(path);
    return 0;
}
