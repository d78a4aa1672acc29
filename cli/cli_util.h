/* Helpers shared by the subcommands: comma lists, trace folders, the command line as text. */
#ifndef WIKV_CLI_CLI_UTIL_H
#define WIKV_CLI_CLI_UTIL_H

#include <stddef.h>

typedef struct wk_strlist {
    char **items;
    size_t n, cap;
} wk_strlist;

int wk_strlist_add(wk_strlist *l, const char *s);
void wk_strlist_free(wk_strlist *l);
/* Adds the items of a comma-separated list. */
int wk_strlist_add_csv(wk_strlist *l, const char *csv);
/* Adds policy specs from a comma list where "key=value" items continue the previous policy's
 * parameters: "prefill,kivi2:group=64,residual=256,full" is three policies. */
int wk_strlist_add_policies(wk_strlist *l, const char *csv);
/* Adds a trace path; a directory adds the trace files in it (MANIFEST.tsv entries when it has one,
 * with csv:COLUMN entries as PATH#COLUMN). Returns -1 (message on stderr) when nothing usable. */
int wk_strlist_add_traces(wk_strlist *l, const char *path);
/* The command line joined by spaces, for the runs table. */
void wk_cli_command_line(int argc, char **argv, const char *prefix, char *buf, size_t cap);
/* Parses a comma list of positive integers into out[0..max); returns the count or -1. */
int wk_parse_int_list(const char *csv, int *out, int max);

#endif
