/* Synthetic long-context task generator: filler sentences from fixed word lists with needles placed
 * at random depths. Everything is drawn from one explicit xoshiro256** state per item, seeded from
 * (task, seed, target length), so an item is a pure function of those three. */
#include "exec/tasks.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

/* ---- growable text buffer -------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_grow(sbuf *b, size_t extra) {
    if (b->oom || b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = 1; return; }
    b->p = p;
    b->cap = cap;
}

static void sb_putn(sbuf *b, const char *s, size_t n) {
    sb_grow(b, n);
    if (b->oom) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_putn(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* ---- filler text ------------------------------------------------------------------------------ */

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Nouns start with a consonant so that "a" is always the right article. */
static const char *const NOUNS[] = {
    "river", "garden", "market", "teacher", "window", "farmer", "bridge", "letter", "village", "doctor",
    "mountain", "table", "kitchen", "student", "forest", "boat", "harbor", "painter", "road", "library",
    "baker", "clock", "field", "station", "tower", "lamp", "city", "castle", "wagon", "bird",
    "horse", "tree", "stone", "cloud", "ship", "king", "queen", "child", "neighbor", "sailor",
    "house", "door", "wall", "basket", "candle", "coat", "dog", "cat", "fisher", "hunter",
    "singer", "writer", "lake", "valley", "hill", "path", "school", "shop", "fountain", "train"};
static const char *const ADJS[] = {
    "old", "young", "quiet", "bright", "small", "large", "green", "cold", "warm", "busy",
    "empty", "heavy", "gentle", "dark", "narrow", "wide", "golden", "silver", "tired", "happy",
    "careful", "simple", "strange", "famous", "distant", "ancient", "wooden", "clean", "soft", "proud"};
static const char *const VERBS_PAST[] = {
    "watched", "followed", "carried", "painted", "visited", "found", "opened", "cleaned", "built", "moved",
    "passed", "reached", "crossed", "helped", "called", "noticed", "remembered", "lifted", "pulled", "pushed",
    "greeted", "counted", "described", "repaired", "guarded", "shared", "brought", "left", "met", "saw"};
static const char *const VERBS_INTRANS[] = {
    "waited", "rested", "walked", "laughed", "listened", "worked", "traveled", "smiled", "slept", "returned",
    "stayed", "sang", "waved", "arrived", "wandered"};
static const char *const VERBS_PRESENT[] = {
    "watches", "follows", "carries", "visits", "finds", "opens", "cleans", "builds", "reaches", "crosses",
    "helps", "calls", "notices", "remembers", "guards", "shares", "brings", "meets", "sees", "counts"};
static const char *const ADVERBS[] = {
    "slowly", "quickly", "quietly", "gladly", "often", "again", "early", "late", "together", "alone",
    "calmly", "carefully", "happily", "softly", "twice"};
static const char *const PREPS[] = {"near", "behind", "beside", "across", "under", "above", "around", "toward",
                                    "past", "beyond"};
static const char *const TIMES[] = {"morning", "evening", "afternoon", "night", "spring", "summer", "autumn",
                                    "winter", "rain", "snow"};

static const char *pick(wk_rng *r, const char *const *list, size_t n) {
    return list[wk_rng_below(r, n)];
}
#define PICK(r, list) pick((r), (list), COUNT(list))

/* Appends one sentence (no leading or trailing space). */
static void filler_sentence(wk_rng *r, sbuf *b) {
    switch (wk_rng_below(r, 7)) {
    case 0:
        sb_printf(b, "The %s %s %s the %s %s the %s.", PICK(r, ADJS), PICK(r, NOUNS), PICK(r, VERBS_PAST),
                  PICK(r, NOUNS), PICK(r, PREPS), PICK(r, NOUNS));
        break;
    case 1:
        sb_printf(b, "A %s %s %s %s the %s %s.", PICK(r, NOUNS), PICK(r, VERBS_INTRANS), PICK(r, ADVERBS),
                  PICK(r, PREPS), PICK(r, ADJS), PICK(r, NOUNS));
        break;
    case 2:
        sb_printf(b, "In the %s, the %s %s the %s %s.", PICK(r, TIMES), PICK(r, NOUNS), PICK(r, VERBS_PAST),
                  PICK(r, ADJS), PICK(r, NOUNS));
        break;
    case 3:
        sb_printf(b, "The %s and the %s %s %s.", PICK(r, NOUNS), PICK(r, NOUNS), PICK(r, VERBS_INTRANS),
                  PICK(r, ADVERBS));
        break;
    case 4:
        sb_printf(b, "Every %s %s the %s when the %s is %s.", PICK(r, NOUNS), PICK(r, VERBS_PRESENT),
                  PICK(r, NOUNS), PICK(r, NOUNS), PICK(r, ADJS));
        break;
    case 5:
        sb_printf(b, "The %s was %s, so the %s %s the %s.", PICK(r, NOUNS), PICK(r, ADJS), PICK(r, NOUNS),
                  PICK(r, VERBS_PAST), PICK(r, NOUNS));
        break;
    default:
        sb_printf(b, "Near the %s %s, a %s %s %s.", PICK(r, ADJS), PICK(r, NOUNS), PICK(r, NOUNS),
                  PICK(r, VERBS_INTRANS), PICK(r, ADVERBS));
        break;
    }
}

/* ---- composing a context: intro, filler sentences, needles at random sentence slots ------------ */

typedef struct {
    const char *text;
    size_t slot; /* inserted before filler sentence `slot` (== n_sentences: at the end) */
} needle;

static int cmp_slot(const void *a, const void *b) {
    size_t x = ((const needle *)a)->slot, y = ((const needle *)b)->slot;
    return (x > y) - (x < y);
}

/* Sentences are separated by one space; every 6th boundary is a paragraph break, so the text has
 * the shape of prose. Needles keep their given order when `ordered` (a chain must read in order). */
static int compose(wk_rng *r, const char *intro, needle *needles, size_t n_needles, int ordered,
                   size_t target_chars, sbuf *out) {
    size_t fixed = strlen(intro);
    for (size_t i = 0; i < n_needles; i++) fixed += strlen(needles[i].text) + 1;
    /* filler first, into its own buffer with sentence offsets, then interleave */
    sbuf fill = {0};
    size_t *starts = NULL, n_sent = 0, cap_sent = 0;
    while (fixed + fill.len < target_chars && !fill.oom) {
        if (n_sent == cap_sent) {
            cap_sent = cap_sent ? cap_sent * 2 : 64;
            size_t *p = realloc(starts, (cap_sent + 1) * sizeof *p);
            if (!p) { fill.oom = 1; break; }
            starts = p;
        }
        starts[n_sent++] = fill.len;
        filler_sentence(r, &fill);
        sb_putn(&fill, " ", 1);
    }
    if (fill.oom) { free(fill.p); free(starts); return WK_ENOMEM; }
    if (starts) starts[n_sent] = fill.len;
    for (size_t i = 0; i < n_needles; i++) needles[i].slot = (size_t)wk_rng_below(r, n_sent + 1);
    if (ordered) {
        /* sort the slots, keep the needle texts in their order */
        size_t *slots = malloc((n_needles + 1) * sizeof *slots);
        if (!slots) { free(fill.p); free(starts); return WK_ENOMEM; }
        for (size_t i = 0; i < n_needles; i++) slots[i] = needles[i].slot;
        for (size_t i = 1; i < n_needles; i++)
            for (size_t j = i; j > 0 && slots[j - 1] > slots[j]; j--) {
                size_t t = slots[j]; slots[j] = slots[j - 1]; slots[j - 1] = t;
            }
        for (size_t i = 0; i < n_needles; i++) needles[i].slot = slots[i];
        free(slots);
    } else {
        /* stable order for equal slots: insertion sort by slot (qsort is not stable) */
        for (size_t i = 1; i < n_needles; i++)
            for (size_t j = i; j > 0 && cmp_slot(&needles[j - 1], &needles[j]) > 0; j--) {
                needle t = needles[j]; needles[j] = needles[j - 1]; needles[j - 1] = t;
            }
    }
    sb_puts(out, intro);
    size_t k = 0;
    for (size_t s = 0; s <= n_sent; s++) {
        while (k < n_needles && needles[k].slot == s) {
            sb_puts(out, needles[k++].text);
            sb_putn(out, " ", 1);
        }
        if (s == n_sent) break;
        if (s > 0 && s % 6 == 0 && out->len > 0 && out->p[out->len - 1] == ' ') {
            out->p[out->len - 1] = '\n'; /* paragraph break */
        }
        sb_putn(out, fill.p + starts[s], starts[s + 1] - starts[s]);
    }
    if (out->len > 0 && out->p[out->len - 1] == ' ') out->p[--out->len] = '\0';
    free(fill.p);
    free(starts);
    return out->oom ? WK_ENOMEM : 0;
}

/* ---- answers -------------------------------------------------------------------------------- */

static int add_answer(wk_task_item *it, const char *s) {
    char **a = realloc(it->answers, (it->n_answers + 1) * sizeof *a);
    if (!a) return WK_ENOMEM;
    it->answers = a;
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (!copy) return WK_ENOMEM;
    memcpy(copy, s, n + 1);
    it->answers[it->n_answers++] = copy;
    return 0;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

/* ---- the four tasks ------------------------------------------------------------------------- */

static int gen_passkey(wk_rng *r, size_t target, wk_task_item *it) {
    char key[16], text[160];
    snprintf(key, sizeof key, "%05u", (unsigned)(10000 + wk_rng_below(r, 90000)));
    snprintf(text, sizeof text, "The pass key is %s. Remember it. %s is the pass key.", key, key);
    needle nd = {text, 0};
    sbuf ctx = {0};
    int rc = compose(r,
                     "There is an important piece of information hidden inside a lot of irrelevant text. "
                     "Find it and memorize it. I will quiz you about the important information there.\n",
                     &nd, 1, 1, target, &ctx);
    if (rc) { free(ctx.p); return rc; }
    it->context = ctx.p;
    it->input = dup_str("What is the pass key?");
    return it->input ? add_answer(it, key) : WK_ENOMEM;
}

static void hex_key(wk_rng *r, char out[16]) {
    uint64_t v = wk_rng_next(r);
    snprintf(out, 16, "%08x-%04x", (unsigned)(v >> 32), (unsigned)(v & 0xFFFF));
}

static int gen_multikey(wk_rng *r, size_t target, wk_task_item *it) {
    /* one fact per ~1000 characters, between 4 and 32 facts */
    size_t n = target / 1000;
    n = n < 4 ? 4 : n > 32 ? 32 : n;
    char keys[32][16], vals[32][8], texts[32][128];
    needle nd[32];
    for (size_t i = 0; i < n; i++) {
        int fresh;
        do {
            hex_key(r, keys[i]);
            snprintf(vals[i], sizeof vals[i], "%06u", (unsigned)(100000 + wk_rng_below(r, 900000)));
            fresh = 1;
            for (size_t j = 0; j < i; j++)
                if (!strcmp(keys[j], keys[i]) || !strcmp(vals[j], vals[i])) fresh = 0;
        } while (!fresh);
        snprintf(texts[i], sizeof texts[i], "One of the special keys is %.15s. The value of key %.15s is %.7s.", keys[i],
                 keys[i], vals[i]);
        nd[i].text = texts[i];
    }
    size_t ask = (size_t)wk_rng_below(r, n);
    sbuf ctx = {0};
    int rc = compose(r,
                     "Some special keys with their values are hidden inside the following text. Memorize each "
                     "key and its value. I will ask you about one of them later.\n",
                     nd, n, 0, target, &ctx);
    if (rc) { free(ctx.p); return rc; }
    it->context = ctx.p;
    char q[96];
    snprintf(q, sizeof q, "What is the value of key %s?", keys[ask]);
    it->input = dup_str(q);
    return it->input ? add_answer(it, vals[ask]) : WK_ENOMEM;
}

/* Topics are "the <field> of <subject>" with distinct subjects within an item, so no topic phrase
 * contains another. */
static const char *const TOPIC_FIELDS[] = {"history", "science", "future", "economics", "art", "politics",
                                           "geography", "music", "design", "ethics", "engineering", "chemistry",
                                           "language", "psychology", "architecture", "medicine"};
static const char *const TOPIC_SUBJECTS[] = {
    "coffee", "volcanoes", "railways", "chess", "honeybees", "glass", "tea", "bicycles", "deserts", "whales",
    "clocks", "paper", "bridges", "salt", "islands", "rice", "lighthouses", "maps", "silk", "comets",
    "gardens", "bread", "satellites", "rivers", "cheese", "kites", "telescopes", "forests", "trains", "pottery",
    "dolphins", "castles", "wool", "orchards", "violins", "glaciers", "lanterns", "markets", "canals", "owls",
    "mirrors", "sugar", "caves", "windmills"};
#define TOPIC_MAX 40
_Static_assert(TOPIC_MAX <= COUNT(TOPIC_SUBJECTS), "topics need distinct subjects");

static int gen_topic(wk_rng *r, size_t target, wk_task_item *it) {
    /* one topic per ~1500 characters, between 2 and TOPIC_MAX */
    size_t n = target / 1500;
    n = n < 2 ? 2 : n > TOPIC_MAX ? TOPIC_MAX : n;
    size_t field[TOPIC_MAX], subj[TOPIC_MAX];
    for (size_t i = 0; i < n; i++) {
        int fresh;
        do {
            field[i] = (size_t)wk_rng_below(r, COUNT(TOPIC_FIELDS));
            subj[i] = (size_t)wk_rng_below(r, COUNT(TOPIC_SUBJECTS));
            fresh = 1;
            for (size_t j = 0; j < i; j++)
                if (subj[j] == subj[i]) fresh = 0; /* distinct subjects: no topic contains another */
        } while (!fresh);
    }
    sbuf ctx = {0};
    sb_printf(&ctx,
              "Below is a record of our previous conversation on %zu different topics. You are the ASSISTANT, "
              "and I am the USER. At the beginning of each topic, the USER will say 'I would like to discuss "
              "the topic of <TOPIC>'. Memorize each <TOPIC>. At the end of the record, I will ask you to "
              "retrieve the first topic. Now the record start.\n",
              n);
    const char *tail = "Now the record ends.";
    size_t head = ctx.len, tail_len = strlen(tail) + 1;
    size_t body = target > head + tail_len ? target - head - tail_len : 0;
    for (size_t i = 0; i < n && !ctx.oom; i++) {
        size_t end = head + body * (i + 1) / n; /* equal share of the text per topic, no drift */
        if (i > 0) sb_putn(&ctx, "\n", 1);
        sb_printf(&ctx, "USER: I would like to discuss the topic of the %s of %s.\nASSISTANT: Sure!",
                  TOPIC_FIELDS[field[i]], TOPIC_SUBJECTS[subj[i]]);
        /* turns of one to three sentences, alternating speakers, checked per sentence */
        int assistant = 1;
        size_t left = 1 + (size_t)wk_rng_below(r, 3);
        while (ctx.len < end && !ctx.oom) {
            if (left == 0) {
                assistant = !assistant;
                sb_puts(&ctx, assistant ? "\nASSISTANT:" : "\nUSER:");
                left = 1 + (size_t)wk_rng_below(r, 3);
            }
            sb_putn(&ctx, " ", 1);
            filler_sentence(r, &ctx);
            left--;
        }
    }
    sb_putn(&ctx, "\n", 1);
    sb_puts(&ctx, tail);
    if (ctx.oom) { free(ctx.p); return WK_ENOMEM; }
    it->context = ctx.p;
    it->input = dup_str("What is the first topic we discussed? Only give me the topic name. Do not summarize yourself.");
    char ans[96];
    snprintf(ans, sizeof ans, "the %s of %s", TOPIC_FIELDS[field[0]], TOPIC_SUBJECTS[subj[0]]);
    return it->input ? add_answer(it, ans) : WK_ENOMEM;
}

#define VT_HOPS 4   /* assignments after the first: a chain of VT_HOPS+1 variables */
#define VT_CHAINS 2 /* the asked chain and one distractor chain */

static void var_name(wk_rng *r, char out[8]) {
    for (int i = 0; i < 5; i++) out[i] = (char)('A' + wk_rng_below(r, 26));
    out[5] = '\0';
}

static int gen_vartrack(wk_rng *r, size_t target, wk_task_item *it) {
    enum { NV = VT_CHAINS * (VT_HOPS + 1) };
    char names[NV][8], texts[NV][64];
    unsigned value[VT_CHAINS];
    for (size_t i = 0; i < NV; i++) {
        int fresh;
        do {
            var_name(r, names[i]);
            fresh = 1;
            for (size_t j = 0; j < i; j++)
                if (!strcmp(names[i], names[j])) fresh = 0;
        } while (!fresh);
    }
    for (size_t c = 0; c < VT_CHAINS; c++) {
        int fresh;
        do {
            value[c] = (unsigned)(10000 + wk_rng_below(r, 90000));
            fresh = 1;
            for (size_t j = 0; j < c; j++)
                if (value[j] == value[c]) fresh = 0;
        } while (!fresh);
    }
    /* chains are interleaved hop by hop so each reads in order: chain c's hop h is needle h*CHAINS+c */
    needle nd[NV];
    for (size_t h = 0; h <= VT_HOPS; h++)
        for (size_t c = 0; c < VT_CHAINS; c++) {
            size_t v = c * (VT_HOPS + 1) + h, k = h * VT_CHAINS + c;
            if (h == 0) snprintf(texts[k], sizeof texts[k], "VAR %s = %u.", names[v], value[c]);
            else snprintf(texts[k], sizeof texts[k], "VAR %s = VAR %s.", names[v], names[v - 1]);
            nd[k].text = texts[k];
        }
    sbuf ctx = {0};
    int rc = compose(r, "Memorize and track the chain(s) of variable assignment hidden in the following text.\n", nd,
                     NV, 1, target, &ctx);
    if (rc) { free(ctx.p); return rc; }
    it->context = ctx.p;
    /* which chain is asked is drawn too, so "the first chain" is no shortcut */
    size_t ask = (size_t)wk_rng_below(r, VT_CHAINS);
    char q[96];
    snprintf(q, sizeof q, "Find all variables that are assigned the value %u in the text above.", value[ask]);
    it->input = dup_str(q);
    if (!it->input) return WK_ENOMEM;
    for (size_t h = 0; h <= VT_HOPS; h++)
        if (add_answer(it, names[ask * (VT_HOPS + 1) + h])) return WK_ENOMEM;
    return 0;
}

/* ---- public ------------------------------------------------------------------------------------ */

static const char *const TASK_NAMES[WK_TASK_KINDS] = {"passkey", "multikey", "topic", "vartrack"};

const char *wk_task_name(wk_task_kind kind) { return (unsigned)kind < WK_TASK_KINDS ? TASK_NAMES[kind] : "?"; }

int wk_task_kind_parse(const char *name, wk_task_kind *out, wk_err *err) {
    for (int k = 0; k < WK_TASK_KINDS; k++)
        if (name && !strcmp(name, TASK_NAMES[k])) {
            *out = (wk_task_kind)k;
            return 0;
        }
    return wk_err_set(err, WK_EINVAL, "unknown task '%s' (expected passkey, multikey, topic or vartrack)",
                      name ? name : "");
}

wk_task_kind wk_task_mix_kind(uint64_t seed) { return (wk_task_kind)(seed % WK_TASK_KINDS); }

const char *wk_task_metric(wk_task_kind kind) { return kind == WK_TASK_VARTRACK ? "contains_all" : "contains"; }

static size_t count_words(const char *s) {
    size_t n = 0;
    int in = 0;
    for (; *s; s++) {
        int space = *s == ' ' || *s == '\n' || *s == '\t' || *s == '\r';
        if (!space && !in) n++;
        in = !space;
    }
    return n;
}

void wk_task_item_free(wk_task_item *item) {
    if (!item) return;
    free(item->context);
    free(item->input);
    for (size_t i = 0; i < item->n_answers; i++) free(item->answers[i]);
    free(item->answers);
    memset(item, 0, sizeof *item);
}

int wk_task_generate(wk_task_kind kind, uint64_t seed, size_t context_tokens, wk_task_item *out, wk_err *err) {
    memset(out, 0, sizeof *out);
    if ((unsigned)kind >= WK_TASK_KINDS) return wk_err_set(err, WK_EINVAL, "task: bad task kind %d", (int)kind);
    if (context_tokens < WK_TASK_MIN_TOKENS || context_tokens > WK_TASK_MAX_TOKENS)
        return wk_err_set(err, WK_EINVAL, "task: context %zu tokens out of range [%d, %d]", context_tokens,
                          WK_TASK_MIN_TOKENS, WK_TASK_MAX_TOKENS);
    /* the item's stream depends on all three inputs */
    wk_rng r;
    wk_rng_seed(&r, seed ^ ((uint64_t)kind + 1) * 0xD1B54A32D192ED03ULL ^ (uint64_t)context_tokens * 0x8CB92BA72F3D8DD7ULL);
    out->kind = kind;
    out->seed = seed;
    out->target_tokens = context_tokens;
    size_t target = context_tokens * WK_TASK_CHARS_PER_TOKEN;
    int rc;
    switch (kind) {
    case WK_TASK_PASSKEY: rc = gen_passkey(&r, target, out); break;
    case WK_TASK_MULTIKEY: rc = gen_multikey(&r, target, out); break;
    case WK_TASK_TOPIC: rc = gen_topic(&r, target, out); break;
    default: rc = gen_vartrack(&r, target, out); break;
    }
    if (rc == 0 && (!out->context || !out->input)) rc = WK_ENOMEM;
    if (rc) {
        wk_task_item_free(out);
        return wk_err_set(err, rc, "task %s: out of memory", TASK_NAMES[kind]);
    }
    out->length = count_words(out->context);
    return 0;
}

static int put_json_string(FILE *f, const char *s) {
    size_t need = wk_json_escape(s, NULL, 0);
    char *buf = malloc(need + 1);
    if (!buf) return WK_ENOMEM;
    wk_json_escape(s, buf, need + 1);
    int ok = fputs(buf, f) >= 0;
    free(buf);
    return ok ? 0 : WK_EIO;
}

int wk_task_write_jsonl(const wk_task_item *it, FILE *out, wk_err *err) {
    const char *name = wk_task_name(it->kind);
    int rc = fprintf(out, "{\"task\": \"%s\", \"dataset\": \"%s\", \"seed\": %llu, \"target_tokens\": %zu, \"context\": ",
                     name, name, (unsigned long long)it->seed, it->target_tokens) < 0 ? WK_EIO : 0;
    if (!rc) rc = put_json_string(out, it->context);
    if (!rc) rc = fputs(", \"input\": ", out) < 0 ? WK_EIO : put_json_string(out, it->input);
    if (!rc) rc = fputs(", \"answers\": [", out) < 0 ? WK_EIO : 0;
    for (size_t i = 0; !rc && i < it->n_answers; i++) {
        if (i && fputs(", ", out) < 0) rc = WK_EIO;
        if (!rc) rc = put_json_string(out, it->answers[i]);
    }
    if (!rc) rc = fprintf(out, "], \"length\": %zu}\n", it->length) < 0 ? WK_EIO : 0;
    if (rc) return wk_err_set(err, rc, "task: writing jsonl failed");
    return 0;
}
