/* LongBench answer metrics (qa_f1, ROUGE-L of pip `rouge` 1.0.1, classification, retrieval, count),
 * exact match and the synthetic tasks' containment scores. The Python behaviour being reproduced is
 * quoted next to each port; text is handled as Unicode code points where Python would. */
#include "exec/metrics.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- Unicode helpers ------------------------------------------------------------------------- */

/* Decodes one UTF-8 sequence; malformed bytes decode to U+FFFD one byte at a time. */
static size_t u8_dec(const unsigned char *s, size_t len, uint32_t *cp) {
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 1) { *cp = c; return 1; }
    if (n == 0 || n > len) { *cp = 0xFFFD; return 1; }
    uint32_t v = c & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = 0xFFFD; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[n] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = 0xFFFD; return 1; }
    *cp = v;
    return n;
}

static size_t u8_enc(uint32_t cp, char *d) {
    if (cp < 0x80) { d[0] = (char)cp; return 1; }
    if (cp < 0x800) { d[0] = (char)(0xC0 | (cp >> 6)); d[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12)); d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18)); d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); d[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

/* Python's str.isspace (what str.split() splits on). */
static int py_isspace(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 28 && c <= 32) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* string.punctuation */
static int ascii_punct(uint32_t c) { return c < 0x80 && strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", (int)c) && c; }

/* Python's str.lower on the common alphabets; writes 1 or 2 code points. */
static int py_lower(uint32_t c, uint32_t out[2]) {
    out[0] = c;
    if (c >= 'A' && c <= 'Z') out[0] = c + 32;
    else if (c < 0xC0) {
    } else if (c <= 0xDE && c != 0xD7) out[0] = c + 32;
    else if (c == 0x130) { out[0] = 'i'; out[1] = 0x307; return 2; }
    else if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) out[0] = c | 1;
    else if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) out[0] = (c & 1) ? c + 1 : c;
    else if (c == 0x178) out[0] = 0xFF;
    else if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) out[0] = c + 32;
    else if (c >= 0x410 && c <= 0x42F) out[0] = c + 32;
    else if (c >= 0x400 && c <= 0x40F) out[0] = c + 80;
    return 1;
}

/* Python re's \w for str patterns (isalnum or '_'), approximated by excluding the non-alphanumeric
 * blocks that occur in English text: Latin-1 symbols, combining marks, general punctuation,
 * currency, arrows/math/box drawing/dingbats, CJK and fullwidth punctuation, emoji. */
static int py_isword(uint32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (py_isspace(c)) return 0;
    if (c < 0xC0) return c == 0xAA || c == 0xB2 || c == 0xB3 || c == 0xB5 || c == 0xB9 || c == 0xBA || c >= 0xBC;
    if (c == 0xD7 || c == 0xF7) return 0;
    if (c >= 0x2B9 && c <= 0x36F) return c <= 0x2C1 || (c >= 0x2C6 && c <= 0x2D1) || (c >= 0x2E0 && c <= 0x2E4) ||
                                          c == 0x2EC || c == 0x2EE;
    if (c >= 0x2000 && c <= 0x206F) return 0;
    if (c >= 0x20A0 && c <= 0x20FF) return 0;
    if (c >= 0x2190 && c <= 0x2BFF) return 0;
    if ((c >= 0x3000 && c <= 0x3004) || (c >= 0x3008 && c <= 0x3020) || c == 0x3030) return 0;
    if ((c >= 0xFE10 && c <= 0xFE6F) || (c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
        (c >= 0xFF3B && c <= 0xFF40) || (c >= 0xFF5B && c <= 0xFF65))
        return 0;
    if (c >= 0x1F000 && c <= 0x1FAFF) return 0;
    return c != 0xFFFD;
}

typedef struct {
    uint32_t *v;
    size_t n, cap;
} cpvec;

static int cp_push(cpvec *a, uint32_t c) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        uint32_t *p = realloc(a->v, cap * sizeof *p);
        if (!p) return WK_ENOMEM;
        a->v = p;
        a->cap = cap;
    }
    a->v[a->n++] = c;
    return 0;
}

static int oom(wk_err *err) { return wk_err_set(err, WK_ENOMEM, "metrics: out of memory"); }

/* ---- normalize_answer ------------------------------------------------------------------------ */

/* lower -> remove_punc -> remove_articles (re.sub(r"\b(a|an|the)\b", " ", t)) -> " ".join(t.split()) */
int wk_metric_normalize_answer(const char *s, char **out, wk_err *err) {
    *out = NULL;
    size_t len = strlen(s);
    cpvec t = {0}, u = {0};
    int rc = 0;
    for (size_t i = 0; i < len && !rc;) {
        uint32_t c, lo[2];
        i += u8_dec((const unsigned char *)s + i, len - i, &c);
        int k = py_lower(c, lo);
        for (int j = 0; j < k && !rc; j++)
            if (!ascii_punct(lo[j])) rc = cp_push(&t, lo[j]);
    }
    /* articles: a|an|the between word boundaries; scanning resumes after each match as re.sub does */
    for (size_t i = 0; i < t.n && !rc;) {
        size_t m = 0;
        if (i == 0 || !py_isword(t.v[i - 1])) {
            static const char *const art[] = {"a", "an", "the"};
            for (int a = 0; a < 3 && !m; a++) {
                size_t al = strlen(art[a]), j = 0;
                while (j < al && i + j < t.n && t.v[i + j] == (uint32_t)art[a][j]) j++;
                if (j == al && (i + al == t.n || !py_isword(t.v[i + al]))) m = al;
            }
        }
        if (m) { rc = cp_push(&u, ' '); i += m; }
        else rc = cp_push(&u, t.v[i++]);
    }
    /* whitespace fix, then UTF-8 */
    char *buf = rc ? NULL : malloc(u.n * 4 + 1);
    if (!rc && buf) {
        size_t n = 0;
        int pending = 0;
        for (size_t i = 0; i < u.n; i++) {
            if (py_isspace(u.v[i])) { pending = n > 0; continue; }
            if (pending) buf[n++] = ' ';
            pending = 0;
            n += u8_enc(u.v[i], buf + n);
        }
        buf[n] = '\0';
        *out = buf;
    }
    free(t.v);
    free(u.v);
    return *out ? 0 : oom(err);
}

/* ---- qa_f1 --------------------------------------------------------------------------------- */

/* Splits a normalised string (single spaces, no other whitespace) into tokens in place. */
static size_t split_spaces(char *s, char ***toks) {
    size_t n = 0;
    for (char *p = s; *p; p++) n += (p == s || p[-1] == ' ') && *p != ' ';
    *toks = malloc((n ? n : 1) * sizeof **toks);
    if (!*toks) return (size_t)-1;
    size_t k = 0;
    for (char *p = s; *p;) {
        while (*p == ' ') *p++ = '\0';
        if (!*p) break;
        (*toks)[k++] = p;
        while (*p && *p != ' ') p++;
    }
    return k;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Counter(pred) & Counter(gold): size of the multiset intersection of two sorted token lists. */
static size_t multiset_common(char **a, size_t na, char **b, size_t nb) {
    qsort(a, na, sizeof *a, cmp_str);
    qsort(b, nb, sizeof *b, cmp_str);
    size_t i = 0, j = 0, same = 0;
    while (i < na && j < nb) {
        int c = strcmp(a[i], b[j]);
        if (c == 0) { same++; i++; j++; }
        else if (c < 0) i++;
        else j++;
    }
    return same;
}

static int qa_f1(const char *pred, const char *gold, double *out, wk_err *err) {
    char *np = NULL, *ng = NULL, **tp = NULL, **tg = NULL;
    int rc = wk_metric_normalize_answer(pred, &np, err);
    if (!rc) rc = wk_metric_normalize_answer(gold, &ng, err);
    size_t na = rc ? 0 : split_spaces(np, &tp);
    size_t nb = rc || na == (size_t)-1 ? 0 : split_spaces(ng, &tg);
    if (!rc && (na == (size_t)-1 || nb == (size_t)-1)) rc = oom(err);
    *out = 0.0;
    if (!rc) {
        size_t same = multiset_common(tp, na, tg, nb);
        if (same) {
            double precision = 1.0 * (double)same / (double)na, recall = 1.0 * (double)same / (double)nb;
            *out = (2 * precision * recall) / (precision + recall);
        }
    }
    free(np); free(ng); free(tp); free(tg);
    return rc;
}

static int exact_match(const char *pred, const char *gold, double *out, wk_err *err) {
    char *np = NULL, *ng = NULL;
    int rc = wk_metric_normalize_answer(pred, &np, err);
    if (!rc) rc = wk_metric_normalize_answer(gold, &ng, err);
    *out = !rc && strcmp(np, ng) == 0 ? 1.0 : 0.0;
    free(np); free(ng);
    return rc;
}

/* normalised gold occurs in normalised pred on token boundaries; an empty gold never matches */
static int contains(const char *pred, const char *gold, double *out, wk_err *err) {
    char *np = NULL, *ng = NULL;
    int rc = wk_metric_normalize_answer(pred, &np, err);
    if (!rc) rc = wk_metric_normalize_answer(gold, &ng, err);
    *out = 0.0;
    if (!rc && *ng) {
        size_t lg = strlen(ng);
        for (const char *p = strstr(np, ng); p; p = strstr(p + 1, ng))
            if ((p == np || p[-1] == ' ') && (p[lg] == '\0' || p[lg] == ' ')) { *out = 1.0; break; }
    }
    free(np); free(ng);
    return rc;
}

/* ---- ROUGE-L (pip rouge 1.0.1, summary level, exclusive=True) ---------------------------------- */

typedef struct {
    char *buf;        /* sentences, each NUL-terminated, words separated by single spaces */
    char **words;     /* [n_words] pointers into buf (NUL-terminated by replacing spaces) */
    size_t n_words;
    size_t *sent_off; /* [n_sent+1]: sentence i owns words[sent_off[i]..sent_off[i+1]) */
    size_t n_sent;
    int *ids;         /* [n_words] interned word ids */
} rouge_text;

static void rouge_text_free(rouge_text *t) {
    free(t->buf); free(t->words); free(t->sent_off); free(t->ids);
    memset(t, 0, sizeof *t);
}

/* [" ".join(p.split()) for p in text.split(".") if len(p) > 0], then each sentence .split(" ").
 * A whitespace-only piece becomes "" and contributes the one word "". */
static int rouge_split(const char *text, rouge_text *t) {
    memset(t, 0, sizeof *t);
    size_t len = strlen(text);
    t->buf = malloc(len + 2);
    size_t cap_w = len / 2 + 2, cap_s = len / 2 + 2;
    t->words = malloc(cap_w * sizeof *t->words);
    t->sent_off = malloc(cap_s * sizeof *t->sent_off);
    if (!t->buf || !t->words || !t->sent_off) return WK_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && text[j] != '.') j++;
        if (j > i) {
            t->sent_off[t->n_sent++] = t->n_words;
            size_t start = o;
            int pending = 0;
            for (size_t k = i; k < j;) {
                uint32_t c;
                size_t step = u8_dec((const unsigned char *)text + k, j - k, &c);
                if (py_isspace(c)) pending = o > start;
                else {
                    if (pending) t->buf[o++] = '\0'; /* word separator */
                    pending = 0;
                    memcpy(t->buf + o, text + k, step); /* bytes kept as they are */
                    o += step;
                }
                k += step;
            }
            t->buf[o++] = '\0';
            /* words: the NUL-separated runs from start to o; an empty sentence is one "" word */
            for (size_t p = start; p < o;) {
                t->words[t->n_words++] = t->buf + p;
                p += strlen(t->buf + p) + 1;
            }
        }
        i = j + 1;
    }
    t->sent_off[t->n_sent] = t->n_words;
    return 0;
}

/* Gives equal words equal ids across both texts; returns the number of distinct words. */
static int intern_words(rouge_text *a, rouge_text *b, size_t *n_ids) {
    size_t n = a->n_words + b->n_words;
    char ***all = malloc((n ? n : 1) * sizeof *all);
    a->ids = malloc((a->n_words + 1) * sizeof *a->ids);
    b->ids = malloc((b->n_words + 1) * sizeof *b->ids);
    if (!all || !a->ids || !b->ids) { free(all); return WK_ENOMEM; }
    for (size_t i = 0; i < a->n_words; i++) all[i] = &a->words[i];
    for (size_t i = 0; i < b->n_words; i++) all[a->n_words + i] = &b->words[i];
    /* sort pointers-to-word-slots by word text, then number runs */
    for (size_t gap = n / 2; gap > 0; gap /= 2) /* shell sort: qsort needs a comparator on char*** */
        for (size_t i = gap; i < n; i++)
            for (size_t j = i; j >= gap && strcmp(*all[j - gap], *all[j]) > 0; j -= gap) {
                char **t = all[j]; all[j] = all[j - gap]; all[j - gap] = t;
            }
    int id = -1;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(*all[i - 1], *all[i]) != 0) id++;
        char **slot = all[i];
        if (slot >= a->words && slot < a->words + a->n_words) a->ids[slot - a->words] = id;
        else b->ids[slot - b->words] = id;
    }
    *n_ids = (size_t)(id + 1);
    free(all);
    return 0;
}

static size_t distinct(const int *ids, size_t n, unsigned char *seen, size_t n_ids) {
    memset(seen, 0, n_ids);
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        if (!seen[ids[i]]) { seen[ids[i]] = 1; d++; }
    return d;
}

#define ROUGE_MAX_CELLS (1u << 27) /* LCS table cap: 512 MiB of uint32 */

/* _recon_lcs(x=ref, y=hyp): marks the words of the backtracked LCS in `in_union`. Returns 1 when
 * Python's recursion would overflow (the whole score is then 0.0), 0 when done, <0 on error. */
static int lcs_union(const int *x, size_t lx, const int *y, size_t ly, unsigned char *in_union) {
    if (lx == 0 || ly == 0) return 0;
    if ((lx < ly ? lx : ly) > WK_ROUGE_MAX_BACKTRACK) return 1; /* every path is at least min(lx, ly) */
    if ((lx + 1) > ROUGE_MAX_CELLS / (ly + 1)) return WK_EUNSUPPORTED;
    uint32_t *tb = malloc((lx + 1) * (ly + 1) * sizeof *tb);
    if (!tb) return WK_ENOMEM;
#define T(i, j) tb[(size_t)(i) * (ly + 1) + (j)]
    for (size_t i = 0; i <= lx; i++)
        for (size_t j = 0; j <= ly; j++) {
            if (i == 0 || j == 0) T(i, j) = 0;
            else if (x[i - 1] == y[j - 1]) T(i, j) = T(i - 1, j - 1) + 1;
            else T(i, j) = T(i - 1, j) > T(i, j - 1) ? T(i - 1, j) : T(i, j - 1);
        }
    /* first count the steps _recon would recurse, then mark; a too-deep path marks nothing */
    size_t steps = 0;
    for (size_t i = lx, j = ly; i > 0 && j > 0; steps++) {
        if (x[i - 1] == y[j - 1]) { i--; j--; }
        else if (T(i - 1, j) > T(i, j - 1)) i--;
        else j--;
    }
    int deep = steps > WK_ROUGE_MAX_BACKTRACK;
    for (size_t i = lx, j = ly; !deep && i > 0 && j > 0;) {
        if (x[i - 1] == y[j - 1]) { in_union[x[i - 1]] = 1; i--; j--; }
        else if (T(i - 1, j) > T(i, j - 1)) i--;
        else j--;
    }
#undef T
    free(tb);
    return deep;
}

static int rouge_l(const char *pred, const char *gold, double *out, wk_err *err) {
    *out = 0.0;
    rouge_text h, r;
    int rc = rouge_split(pred, &h);
    if (!rc) rc = rouge_split(gold, &r);
    else memset(&r, 0, sizeof r);
    size_t n_ids = 0;
    unsigned char *seen = NULL, *uni = NULL;
    if (!rc) rc = intern_words(&h, &r, &n_ids);
    if (!rc) {
        seen = malloc(n_ids + 1);
        uni = calloc(n_ids + 1, 1);
        if (!seen || !uni) rc = WK_ENOMEM;
    }
    /* an empty hypothesis or reference raises ValueError in rouge-1: score 0.0 */
    if (!rc && h.n_sent > 0 && r.n_sent > 0) {
        size_t m = distinct(r.ids, r.n_words, seen, n_ids), n = distinct(h.ids, h.n_words, seen, n_ids);
        int overflow = 0;
        for (size_t i = 0; i < r.n_sent && !rc && !overflow; i++)
            for (size_t k = 0; k < h.n_sent && !rc && !overflow; k++) {
                int v = lcs_union(r.ids + r.sent_off[i], r.sent_off[i + 1] - r.sent_off[i], h.ids + h.sent_off[k],
                                  h.sent_off[k + 1] - h.sent_off[k], uni);
                if (v < 0) rc = v;
                else overflow = v;
            }
        if (!rc && !overflow) {
            size_t llcs = 0;
            for (size_t i = 0; i < n_ids; i++) llcs += uni[i];
            double r_lcs = (double)llcs / (double)m, p_lcs = (double)llcs / (double)n;
            *out = 2.0 * ((p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8));
        }
    }
    free(seen); free(uni);
    rouge_text_free(&h);
    rouge_text_free(&r);
    if (rc == WK_EUNSUPPORTED)
        return wk_err_set(err, rc, "rouge: sentence pair too long for the LCS table (over %u cells)", ROUGE_MAX_CELLS);
    return rc ? oom(err) : 0;
}

/* ---- classification / retrieval / count ------------------------------------------------------ */

/* classification_score, including its quirk: list.remove() inside `for x in list` skips the
 * element after each removal, and removes the FIRST equal element. */
static int classification(const char *pred, const char *gold, const char *const *classes, size_t nc, double *out,
                          wk_err *err) {
    const char **ml = malloc((nc ? nc : 1) * sizeof *ml);
    if (!ml) return oom(err);
    size_t n = 0;
    for (size_t i = 0; i < nc; i++)
        if (strstr(pred, classes[i])) ml[n++] = classes[i];
    for (size_t idx = 0; idx < n; idx++) {
        const char *term = ml[idx];
        if (strstr(gold, term) && strcmp(term, gold) != 0) {
            size_t j = 0;
            while (strcmp(ml[j], term) != 0) j++;
            memmove(ml + j, ml + j + 1, (n - j - 1) * sizeof *ml);
            n--;
        }
    }
    int hit = 0;
    for (size_t i = 0; i < n; i++) hit |= strcmp(ml[i], gold) == 0;
    *out = hit ? 1.0 / (double)n : 0.0;
    free(ml);
    return 0;
}

/* re.findall(r"\d+", pred) compared with `want`: (#equal)/(#numbers), 0 without numbers */
static double number_share(const char *pred, const char *want, size_t wl) {
    size_t total = 0, right = 0;
    for (const char *p = pred; *p;) {
        if (*p >= '0' && *p <= '9') {
            const char *q = p;
            while (*q >= '0' && *q <= '9') q++;
            total++;
            right += (size_t)(q - p) == wl && memcmp(p, want, wl) == 0;
            p = q;
        } else p++;
    }
    return total ? (double)right / (double)total : 0.0;
}

static double retrieval(const char *pred, const char *gold) {
    /* ground_truth_id = re.findall(r'Paragraph (\d+)', gold)[0]; no id: Python raises, we score 0 */
    for (const char *p = strstr(gold, "Paragraph "); p; p = strstr(p + 1, "Paragraph ")) {
        const char *d = p + 10, *q = d;
        while (*q >= '0' && *q <= '9') q++;
        if (q > d) return number_share(pred, d, (size_t)(q - d));
    }
    return 0.0;
}

/* ---- dispatch ---------------------------------------------------------------------------------- */

static const char *const METRIC_NAMES[WK_METRIC_KINDS] = {"qa_f1",     "rouge", "em",       "classification",
                                                          "retrieval", "count", "contains", "contains_all"};

const char *wk_metric_name(wk_metric m) { return (unsigned)m < WK_METRIC_KINDS ? METRIC_NAMES[m] : "?"; }

int wk_metric_parse(const char *name, wk_metric *out, wk_err *err) {
    for (int i = 0; i < WK_METRIC_KINDS; i++)
        if (name && !strcmp(name, METRIC_NAMES[i])) {
            *out = (wk_metric)i;
            return 0;
        }
    return wk_err_set(err, WK_EINVAL, "unknown metric '%s' (qa_f1, rouge, em, classification, retrieval, count, "
                                      "contains, contains_all)", name ? name : "");
}

static int in_list(const char *s, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(s, *list)) return 1;
    return 0;
}

int wk_metric_for_dataset(const char *dataset, wk_metric *out, wk_err *err) {
    static const char *const qa[] = {"narrativeqa", "qasper", "multifieldqa_en", "hotpotqa", "2wikimqa", "musique",
                                     "triviaqa", NULL};
    static const char *const rouge[] = {"gov_report", "qmsum", "multi_news", "samsum", NULL};
    static const char *const unsupported[] = {"dureader", "vcsum", "multifieldqa_zh", "passage_retrieval_zh",
                                              "lcc", "repobench-p", NULL};
    static const char *const contains_tasks[] = {"passkey", "multikey", "topic", NULL};
    const char *d = dataset ? dataset : "";
    /* LongBench-E files name datasets with an "_e" suffix (hotpotqa_e): same metric */
    char base[64];
    size_t n = strlen(d);
    if (n > 2 && n < sizeof base && !strcmp(d + n - 2, "_e")) {
        memcpy(base, d, n - 2);
        base[n - 2] = '\0';
        d = base;
    }
    if (in_list(d, qa)) *out = WK_METRIC_QA_F1;
    else if (in_list(d, rouge)) *out = WK_METRIC_ROUGE_L;
    else if (!strcmp(d, "trec") || !strcmp(d, "lsht")) *out = WK_METRIC_CLASSIFICATION;
    else if (!strcmp(d, "passage_retrieval_en")) *out = WK_METRIC_RETRIEVAL;
    else if (!strcmp(d, "passage_count")) *out = WK_METRIC_COUNT;
    else if (in_list(d, contains_tasks)) *out = WK_METRIC_CONTAINS;
    else if (!strcmp(d, "vartrack")) *out = WK_METRIC_CONTAINS_ALL;
    else if (in_list(d, unsupported))
        return wk_err_set(err, WK_EUNSUPPORTED, "dataset '%s': its metric (Chinese or code similarity) is not "
                                                "implemented; pass --metric", d);
    else return wk_err_set(err, WK_ENOTFOUND, "dataset '%s' has no known metric; pass --metric", d);
    return 0;
}

int wk_metric_first_line_only(const char *dataset) {
    static const char *const first[] = {"trec", "triviaqa", "samsum", "lsht", "trec_e", "triviaqa_e", "samsum_e",
                                        "lsht_e", NULL};
    return dataset && in_list(dataset, first);
}

int wk_metric_score(wk_metric m, const char *pred, const char *gold, const char *const *classes, size_t n_classes,
                    double *out, wk_err *err) {
    *out = 0.0;
    switch (m) {
    case WK_METRIC_QA_F1: return qa_f1(pred, gold, out, err);
    case WK_METRIC_ROUGE_L: return rouge_l(pred, gold, out, err);
    case WK_METRIC_EM: return exact_match(pred, gold, out, err);
    case WK_METRIC_CLASSIFICATION: return classification(pred, gold, classes, n_classes, out, err);
    case WK_METRIC_RETRIEVAL: *out = retrieval(pred, gold); return 0;
    case WK_METRIC_COUNT: *out = number_share(pred, gold, strlen(gold)); return 0;
    case WK_METRIC_CONTAINS:
    case WK_METRIC_CONTAINS_ALL: return contains(pred, gold, out, err);
    default: return wk_err_set(err, WK_EINVAL, "metrics: bad metric %d", (int)m);
    }
}

int wk_metric_score_sample(wk_metric m, const char *dataset, const char *pred, const char *const *answers,
                           size_t n_answers, const char *const *classes, size_t n_classes, double *out, wk_err *err) {
    *out = 0.0;
    char *cut = NULL;
    if (wk_metric_first_line_only(dataset)) {
        /* prediction.lstrip('\n').split('\n')[0] */
        while (*pred == '\n') pred++;
        size_t l = strcspn(pred, "\n");
        cut = malloc(l + 1);
        if (!cut) return oom(err);
        memcpy(cut, pred, l);
        cut[l] = '\0';
        pred = cut;
    }
    int rc = 0;
    double acc = 0.0;
    for (size_t i = 0; i < n_answers && !rc; i++) {
        double s;
        rc = wk_metric_score(m, pred, answers[i], classes, n_classes, &s, err);
        if (m == WK_METRIC_CONTAINS_ALL) acc += s;
        else if (s > acc) acc = s;
    }
    if (!rc) *out = m == WK_METRIC_CONTAINS_ALL ? (n_answers ? acc / (double)n_answers : 0.0) : acc;
    free(cut);
    return rc;
}
