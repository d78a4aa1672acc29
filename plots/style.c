/* The one look of every wikv figure: Okabe-Ito colours (safe for the common colour-vision deficiencies),
 * a fixed colour + marker + dash per known policy so a policy looks the same in every figure of a
 * paper, 9 pt Helvetica at column width, thin axes on two sides, a light grid, no key box. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "plots/plot.h"

/* Okabe-Ito without yellow (#F0E442 is too pale on white), plus its black; grey for "full". */
static const char *const palette[] = {"#0072B2", "#E69F00", "#009E73", "#D55E00",
                                      "#CC79A7", "#56B4E9", "#000000"};
#define N_PALETTE (sizeof palette / sizeof palette[0])

typedef struct {
    const char *policy;
    wk_plot_style style;
} policy_style;

/* Baselines share colours with eviction methods but never colour + marker + dash. wikv is the thick
 * vermillion line; point types are those of gnuplot's cairo terminals (4/5 square, 6/7 circle,
 * 8/9 triangle, 10/11 inverted triangle, 12/13 diamond, 14/15 pentagon; odd = filled). */
static const policy_style known[] = {
    {"prefill", {"#000000", 4, 1, 1.1}},
    {"full", {"#7F7F7F", 6, 1, 1.1}},
    {"kivi2", {"#0072B2", 5, 1, 1.1}},
    {"kivi4", {"#56B4E9", 12, 1, 1.1}},
    {"cachegen", {"#009E73", 9, 1, 1.1}},
    {"wikv", {"#D55E00", 7, 1, 1.7}},
    {"hybrid", {"#E69F00", 13, 1, 1.3}},
    {"h2o", {"#CC79A7", 11, 2, 1.1}},
    {"snapkv", {"#0072B2", 8, 2, 1.1}},
    {"streamingllm", {"#009E73", 10, 2, 1.1}},
    {"pyramidkv", {"#56B4E9", 14, 2, 1.1}},
    {"simcalkv", {"#E69F00", 15, 2, 1.1}},
    {"oracle", {"#000000", 3, 3, 1.1}},
};
#define N_KNOWN (sizeof known / sizeof known[0])

static uint32_t fnv1a(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

int wk_plot_policy_rank(const char *policy) {
    for (size_t i = 0; policy && i < N_KNOWN; i++)
        if (strcmp(known[i].policy, policy) == 0) return (int)i;
    return (int)N_KNOWN;
}

wk_plot_style wk_plot_style_of(const char *policy) {
    int rank = wk_plot_policy_rank(policy);
    if (rank < (int)N_KNOWN) return known[rank].style;
    /* Unknown policies: open markers and non-solid dashes keep them apart from the known table. */
    static const int points[] = {1, 2, 3, 6, 8, 10, 12, 14};
    static const int dashes[] = {4, 5, 2, 3};
    uint32_t h = fnv1a(policy ? policy : "");
    wk_plot_style st = {palette[h % N_PALETTE], points[(h / N_PALETTE) % 8], dashes[(h / (N_PALETTE * 8)) % 4], 1.1};
    return st;
}

const char *wk_plot_palette(size_t i) { return palette[i % N_PALETTE]; }

void wk_plot_quote(FILE *gp, const char *s) {
    fputc('\'', gp);
    for (; s && *s; s++) {
        if (*s == '\'') fputc('\'', gp); /* '' is a quote inside a single-quoted gnuplot string */
        if (*s == '\n' || *s == '\r') fputc(' ', gp);
        else fputc(*s, gp);
    }
    fputc('\'', gp);
}

void wk_plot_tsv_str(FILE *dat, const char *s) {
    if (!s || !*s) {
        fputc('-', dat);
        return;
    }
    for (; *s; s++) fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, dat);
}

void wk_plot_style_spec(FILE *gp, const char *policy, int flags) {
    wk_plot_style st = wk_plot_style_of(policy);
    fprintf(gp, " lc rgb '%s' dt %d lw %.2f", st.color, flags & WK_PLOT_SOLID ? 1 : st.dash, st.width);
    if (flags & WK_PLOT_POINTS) fprintf(gp, " pt %d ps 0.7", st.point);
}

void wk_plot_end_block(wk_plot_out *o) {
    fputs("\n\n", o->dat);
    o->n_series++;
}

/* Terminal line: sizes in inches; line widths normalised so that `lw 1` is 1 pt in every format. */
static void terminal(wk_plot_out *o, double w, double h, double font) {
    FILE *gp = o->gp;
    switch (o->format) {
    case WK_PLOT_PNG: {
        const double dpi = 300, s = dpi / 72; /* pngcairo counts 72 px per inch */
        fprintf(gp,
                "set terminal pngcairo size %d,%d font 'Helvetica,%g' fontscale %.4f linewidth %.4f "
                "pointscale %.4f dashlength 1 noenhanced background '#ffffff'\n",
                (int)(w * dpi + 0.5), (int)(h * dpi + 0.5), font, s, s, s);
        break;
    }
    case WK_PLOT_PDF: /* pdfcairo: fontscale defaults to 0.5 and lw 1 is 0.5 pt */
        fprintf(gp, "set terminal pdfcairo size %gin,%gin font 'Helvetica,%g' fontscale 1 linewidth 2 "
                    "dashlength 1 noenhanced\n", w, h, font);
        break;
    case WK_PLOT_SVG: /* one SVG unit per point, so the figure keeps its proportions */
        fprintf(gp, "set terminal svg size %d,%d fixed font 'Helvetica,%g' linewidth 1 noenhanced "
                    "background '#ffffff'\n", (int)(w * 72 + 0.5), (int)(h * 72 + 0.5), font);
        break;
    }
}

void wk_plot_preamble(wk_plot_out *o, double w_in, double h_in, int numeric_axes) {
    const wk_plot_opts *op = o->opts;
    double w = op && op->width_in > 0 ? op->width_in : w_in;
    double h = op && op->height_in > 0 ? op->height_in : h_in;
    double font = op && op->font_pt > 0 ? op->font_pt : 9;
    FILE *gp = o->gp;
    fprintf(gp, "# Drawn by `wikv plot` from %s; re-draw with: gnuplot %s (in this folder)\n", o->data_base,
            o->script_base);
    fputs("reset\n", gp); /* whatever ~/.gnuplot set, the figure looks the same */
    terminal(o, w, h, font);
    fputs("set output ", gp);
    wk_plot_quote(gp, o->fig_base);
    fputs("\nset encoding utf8\n"
          "set datafile separator '\\t'\n"
          "set border 3 lw 0.6 lc rgb '#333333'\n"
          "set tics nomirror out scale 0.5,0.3 textcolor rgb '#000000'\n"
          "set grid xtics ytics back lt 1 lw 0.5 lc rgb '#dcdcdc'\n"
          "set pointsize 0.7\n"
          "set bars small\n"
          "set style line 100 lc rgb '#7f7f7f' dt 2 lw 0.8\n",
          gp);
    /* The key sits above the plot, samples first, a point smaller than the text: inside the axes it
     * would hide data once there are more than a few policies. */
    fprintf(gp, "set key outside top center horizontal Left reverse nobox noopaque samplen 1.5 spacing 0.95 "
                "width 1 font ',%g' noautotitle\n", font - 1); /* width 1: cairo text is wider than gnuplot estimates */
    if (op && op->title) {
        fputs("set title ", gp);
        wk_plot_quote(gp, op->title);
        fputc('\n', gp);
    }
    if (numeric_axes && op && op->log_x) fputs("set logscale x\nset format x '%g'\n", gp);
    if (numeric_axes && op && op->log_y) fputs("set logscale y\nset format y '%g'\n", gp);
}

void wk_plot_data_ref(wk_plot_out *o, size_t index) {
    wk_plot_quote(o->gp, o->data_base);
    fprintf(o->gp, " skip 1 index %zu", index);
}

void wk_plot_tsv_num(FILE *dat, double v) {
    if (isnan(v)) fputs("\tNaN", dat);
    else fprintf(dat, "\t%.9g", v);
}

double wk_plot_nice_step(double lo, double hi, int max_ticks) {
    double span = hi - lo;
    if (!(span > 0) || max_ticks < 2) return 0;
    double raw = span / (max_ticks - 1), mag = pow(10, floor(log10(raw)));
    static const double nice[] = {1, 2, 2.5, 5, 10};
    for (int i = 0; i < 5; i++)
        if (nice[i] * mag >= raw) return nice[i] * mag;
    return 10 * mag;
}

void wk_plot_ticks(wk_plot_out *o, char axis, double lo, double hi, int max_ticks) {
    int logged = (axis == 'x' && o->opts->log_x) || (axis == 'y' && o->opts->log_y);
    double step = wk_plot_nice_step(lo, hi, max_ticks);
    if (!logged && step > 0) fprintf(o->gp, "set %ctics %.9g\n", axis, step);
}
