/* Trace arguments: a file, PATH#COLUMN, or a folder (every trace file in it, sorted; a folder with a
 * MANIFEST.tsv, like ../shared/traces-public, lists its entries there, with csv:COLUMN as PATH#COLUMN). */
#ifndef WIKV_NET_TRACE_LIST_H
#define WIKV_NET_TRACE_LIST_H

#include <stddef.h>

#include "core/err.h"

/* Appends the trace paths `path` stands for to *list (strdup'd; *n grows). */
int wk_trace_list_expand(const char *path, char ***list, size_t *n, wk_err *err);

#endif
