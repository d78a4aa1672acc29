/* Hand-written matcher for the pre-tokenizer regexes of byte-level BPE tokenizer.json files:
 *   GPT2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   LLAMA3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 *           \s*[\r\n]+|\s+(?!\S)|\s+
 *   QWEN2:  as LLAMA3 with \p{N} (one digit per piece).
 * Alternatives are tried in order at each position, as a backtracking regex engine does; since every
 * character falls in one of the classes, matches are contiguous and cover the text. Invalid UTF-8
 * bytes are single "other" characters. */
#include "exec/tokenizer.h"

typedef enum { CL_OTHER = 0, CL_LETTER, CL_NUMBER, CL_SPACE } char_class;

/* Decodes the code point at s[i] (i < len); returns its byte length (1 for invalid bytes). */
static size_t utf8_at(const unsigned char *s, size_t len, size_t i, uint32_t *cp) {
    unsigned c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > len) {
        *cp = 0xFFFD;
        return 1;
    }
    uint32_t v = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i + k] & 0x3F);
    }
    *cp = v;
    return n;
}

static int is_space_cp(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int in(uint32_t c, uint32_t lo, uint32_t hi) { return c >= lo && c <= hi; }

static char_class latin1_class(uint32_t c) {
    if (c == 0xAA || c == 0xB5 || c == 0xBA) return CL_LETTER;
    if (c == 0xB2 || c == 0xB3 || c == 0xB9 || in(c, 0xBC, 0xBE)) return CL_NUMBER;
    if (c < 0xC0 || c == 0xD7 || c == 0xF7) return CL_OTHER;
    return CL_LETTER;
}

/* Numbers outside ASCII/Latin-1: decimal digits of common scripts, super/subscripts, number forms. */
static int is_number_cp(uint32_t c) {
    if (in(c, 0x660, 0x669) || in(c, 0x6F0, 0x6F9) || in(c, 0x7C0, 0x7C9) || in(c, 0xE50, 0xE59) || in(c, 0xED0, 0xED9))
        return 1;
    if (in(c, 0x966, 0xDEF) && (c & 0x7F) >= 0x66 && (c & 0x7F) <= 0x6F) return 1; /* Indic digit rows */
    if (c == 0x2070 || in(c, 0x2074, 0x2079) || in(c, 0x2080, 0x2089) || in(c, 0x2150, 0x2189)) return 1;
    if (in(c, 0x2460, 0x249B) || in(c, 0x24EA, 0x24FF) || in(c, 0x2776, 0x2793) || c == 0x3007 || in(c, 0x3021, 0x3029))
        return 1;
    return in(c, 0xFF10, 0xFF19) || in(c, 0x1D7CE, 0x1D7FF);
}

/* Marks, punctuation and symbols outside Latin-1 (approximated by block). */
static int is_other_cp(uint32_t c) {
    if (in(c, 0x2C2, 0x2C5) || in(c, 0x2D2, 0x2DF) || in(c, 0x2E5, 0x2EB) || in(c, 0x300, 0x36F)) return 1;
    if (c == 0x375 || c == 0x37E || c == 0x384 || c == 0x385 || c == 0x387 || in(c, 0x482, 0x489)) return 1;
    if (in(c, 0x55A, 0x55F) || in(c, 0x589, 0x5CF) || in(c, 0x5F3, 0x61F) || in(c, 0x64B, 0x66D) || in(c, 0x6D4, 0x6ED))
        return 1;
    if (in(c, 0x2000, 0x2BFF) || in(c, 0x2E00, 0x2E7F) || in(c, 0x3000, 0x3004) || in(c, 0x3008, 0x3020)) return 1;
    if (in(c, 0x3030, 0x303F) || c == 0x309B || c == 0x309C || c == 0x30FB || in(c, 0xD800, 0xF8FF)) return 1;
    if (in(c, 0xFE00, 0xFE0F) || in(c, 0xFE30, 0xFE6F) || in(c, 0xFF00, 0xFF0F) || in(c, 0xFF1A, 0xFF20)) return 1;
    if (in(c, 0xFF3B, 0xFF40) || in(c, 0xFF5B, 0xFF65) || in(c, 0xFFE0, 0xFFFF)) return 1;
    return in(c, 0x1F000, 0x1FAFF) || in(c, 0xE0000, 0xE007F) || c > 0x10FFFF;
}

static char_class classify(uint32_t c) {
    if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CL_LETTER;
        if (c >= '0' && c <= '9') return CL_NUMBER;
        return is_space_cp(c) ? CL_SPACE : CL_OTHER;
    }
    if (is_space_cp(c)) return CL_SPACE;
    if (c < 0x100) return latin1_class(c);
    if (is_number_cp(c)) return CL_NUMBER;
    return is_other_cp(c) ? CL_OTHER : CL_LETTER;
}

typedef struct {
    const unsigned char *s;
    size_t len;
} text;

/* Class and byte length of the character at i (i < len). */
static char_class cls_at(const text *t, size_t i, size_t *n, uint32_t *cp_out) {
    uint32_t cp;
    *n = utf8_at(t->s, t->len, i, &cp);
    if (cp_out) *cp_out = cp;
    return classify(cp);
}

/* End of the run of characters of class c starting at i (at most max chars; 0 = unbounded). */
static size_t run_of(const text *t, size_t i, char_class c, int max) {
    int count = 0;
    while (i < t->len && (max == 0 || count < max)) {
        size_t n;
        if (cls_at(t, i, &n, NULL) != c) break;
        i += n;
        count++;
    }
    return i;
}

static size_t contraction(const text *t, size_t i, int icase) {
    if (t->s[i] != '\'' || i + 1 >= t->len) return 0;
    static const char *const suffix[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    for (int k = 0; k < 7; k++) {
        size_t m = 0;
        while (suffix[k][m] && i + 1 + m < t->len) {
            unsigned char c = t->s[i + 1 + m];
            if (icase && c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
            if (c != (unsigned char)suffix[k][m]) break;
            m++;
        }
        if (suffix[k][m] == '\0') return i + 1 + m;
    }
    return 0;
}

/* \s+(?!\S) then \s+: a whitespace run, leaving its last character to a following non-space. */
static size_t space_run(const text *t, size_t i) {
    size_t end = i, last = i;
    while (end < t->len) {
        size_t n;
        if (cls_at(t, end, &n, NULL) != CL_SPACE) break;
        last = end;
        end += n;
    }
    if (end == t->len || last == i) return end; /* at text end, or a single char (plain \s+) */
    return last;
}

/* ` ?X+` for class X: optional leading space, then a run of X. */
static size_t space_then_run(const text *t, size_t i, char_class c) {
    size_t j = i < t->len && t->s[i] == ' ' ? i + 1 : i;
    if (j >= t->len) return 0;
    size_t n;
    if (cls_at(t, j, &n, NULL) != c) return 0;
    return run_of(t, j, c, 0);
}

static size_t match_gpt2(const text *t, size_t i) {
    size_t e;
    if ((e = contraction(t, i, 0))) return e;
    if ((e = space_then_run(t, i, CL_LETTER))) return e;
    if ((e = space_then_run(t, i, CL_NUMBER))) return e;
    if ((e = space_then_run(t, i, CL_OTHER))) return e;
    return space_run(t, i);
}

static int is_nl(unsigned char c) { return c == '\r' || c == '\n'; }

static size_t match_llama3(const text *t, size_t i, int max_digits) {
    size_t e, n;
    uint32_t cp;
    if ((e = contraction(t, i, 1))) return e;
    char_class c = cls_at(t, i, &n, &cp);
    if (c == CL_LETTER) return run_of(t, i, CL_LETTER, 0);
    if (c != CL_NUMBER && cp != '\r' && cp != '\n' && i + n < t->len) { /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        size_t n2;
        if (cls_at(t, i + n, &n2, NULL) == CL_LETTER) return run_of(t, i + n, CL_LETTER, 0);
    }
    if (c == CL_NUMBER) return run_of(t, i, CL_NUMBER, max_digits);
    if ((e = space_then_run(t, i, CL_OTHER))) { /* ` ?[^\s\p{L}\p{N}]+[\r\n]*` */
        while (e < t->len && is_nl(t->s[e])) e++;
        return e;
    }
    /* \s*[\r\n]+ : the whitespace run up to and including its last newline. */
    size_t end = run_of(t, i, CL_SPACE, 0), last_nl = 0;
    int has_nl = 0;
    for (size_t k = i; k < end; k++)
        if (is_nl(t->s[k])) {
            last_nl = k;
            has_nl = 1;
        }
    if (has_nl) return last_nl + 1;
    return space_run(t, i);
}

int wk_tokenizer_pretok_split(wk_pretok_kind kind, const char *s, size_t len, wk_pretok_emit emit, void *ctx) {
    text t = {(const unsigned char *)s, len};
    size_t i = 0;
    while (i < len) {
        size_t e;
        switch (kind) {
        case WK_PRETOK_GPT2: e = match_gpt2(&t, i); break;
        case WK_PRETOK_LLAMA3: e = match_llama3(&t, i, 3); break;
        case WK_PRETOK_QWEN2: e = match_llama3(&t, i, 1); break;
        default: e = len; break;
        }
        if (e <= i) { /* cannot happen (every char has a class); guard against an endless loop */
            uint32_t cp;
            e = i + utf8_at(t.s, len, i, &cp);
        }
        int rc = emit(ctx, i, e - i);
        if (rc) return rc;
        i = e;
    }
    return 0;
}
