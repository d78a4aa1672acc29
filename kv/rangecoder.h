/* Range (arithmetic) coder over static frequency tables, byte-oriented with carry propagation
 * (32-bit range, 64-bit low, one cached byte plus a run of pending 0xFF bytes).
 *
 * Tables: frequencies of an alphabet of nsym <= WK_RC_MAX_SYMBOLS symbols summing to exactly
 * 2^total_bits (total_bits <= WK_RC_MAX_TOTAL_BITS), so coding one symbol costs a shift, a divide
 * and a search over the cumulative table. A symbol of frequency 0 cannot be coded.
 *
 * Stream: the first byte is always 0 (the initial carry cache); a decoder rejects anything else.
 * The encoder's flush writes 4 more bytes than the symbols need, so a decoder never reads past the end
 * of a valid stream; reading past the end, a count that lands outside the table, or a non-zero first
 * byte are reported as a malformed stream (never a crash).
 *
 * Stored table format (wk_rc_table_write): u8 lo, u8 hi = first and last symbol of non-zero frequency,
 * then hi-lo+1 LEB128 varints, the frequencies of symbols lo..hi; the reader checks they sum to
 * 2^total_bits (total_bits comes from the container). */
#ifndef WIKV_KV_RANGECODER_H
#define WIKV_KV_RANGECODER_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "kv/bytebuf.h"

#define WK_RC_MAX_SYMBOLS 64
#define WK_RC_MAX_TOTAL_BITS 16

typedef struct {
    int nsym;
    int total_bits;
    uint32_t cum[WK_RC_MAX_SYMBOLS + 1]; /* cum[s] = sum of freq[0..s-1]; cum[nsym] = 2^total_bits */
} wk_rc_table;

/* Builds a table from symbol counts [nsym]: every symbol with a count gets frequency >= 1, the others 0;
 * all-zero counts give a uniform table. */
int wk_rc_table_from_counts(wk_rc_table *t, const uint64_t *counts, int nsym, int total_bits, wk_err *err);
static inline uint32_t wk_rc_freq(const wk_rc_table *t, int s) { return t->cum[s + 1] - t->cum[s]; }
/* Ideal cost in bits of coding counts[] with table t (for size estimates). */
double wk_rc_table_cost_bits(const wk_rc_table *t, const uint64_t *counts);
void wk_rc_table_write(const wk_rc_table *t, wk_wbuf *w);
int wk_rc_table_read(wk_rc_table *t, int nsym, int total_bits, wk_rbuf *r, wk_err *err);

typedef struct {
    uint64_t low;
    uint32_t range;
    uint8_t cache;
    uint64_t pending; /* bytes waiting for a possible carry: the cache byte + (pending-1) 0xFF bytes */
    wk_wbuf *out;
} wk_rc_enc;

void wk_rc_enc_init(wk_rc_enc *e, wk_wbuf *out);
/* Codes symbol s (which must have a non-zero frequency in t). */
void wk_rc_enc_put(wk_rc_enc *e, const wk_rc_table *t, int s);
/* Codes `bits` (<= 16) raw bits, uniformly distributed. */
void wk_rc_enc_bits(wk_rc_enc *e, uint32_t value, int bits);
void wk_rc_enc_finish(wk_rc_enc *e);

typedef struct {
    const uint8_t *in;
    size_t len, pos;
    uint32_t range, code;
    int overrun; /* the decoder asked for bytes past the end */
} wk_rc_dec;

int wk_rc_dec_init(wk_rc_dec *d, const uint8_t *in, size_t len, wk_err *err);
/* Returns the next symbol (>= 0), or WK_EFORMAT with err set for a stream that cannot be valid. */
int wk_rc_dec_get(wk_rc_dec *d, const wk_rc_table *t, wk_err *err);
/* Returns the raw bits written by wk_rc_enc_bits, or WK_EFORMAT. */
int wk_rc_dec_bits(wk_rc_dec *d, int bits, wk_err *err);
/* Bytes of input consumed so far. */
static inline size_t wk_rc_dec_used(const wk_rc_dec *d) { return d->pos; }

/* Convenience: code a whole symbol array with one table into w; decode it back (n symbols) from in. */
void wk_rc_encode_array(const wk_rc_table *t, const uint8_t *syms, size_t n, wk_wbuf *w);
int wk_rc_decode_array(const wk_rc_table *t, const uint8_t *in, size_t len, uint8_t *syms, size_t n, wk_err *err);

#endif
