/* SPDX-License-Identifier: MIT */
/* Token sampling: greedy, or temperature + top-p (nucleus). */
#include "eng_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float p;
    int id;
} prob_id;

/* Probabilities are summed in blocks of this many, so that a draw finds its block first and
 * walks at most one block element by element. */
#define BLOCK 64

struct eng_sampler {
    int vocab;
    float temperature, top_p;
    uint64_t rng;
    void *scratch; /* [eng_sample_scratch_bytes(vocab)], NULL for greedy */
};

/* Top-p sorts nothing: probabilities fall into buckets by their exponent and top four
 * mantissa bits (a float's bits order like its value), the buckets' masses find the one that
 * holds the nucleus' edge, and only that bucket's tokens are ordered. p <= 1 keeps the key
 * below 2048. */
#define NBUCKET 2048
#define BUCKET(p) (int)(bits_of(p) >> 19)

/* The scratch of one row: p [V + BLOCK] (exp((logit - max) / T), the last block padded with
 * zeros), the block sums [V / BLOCK + 1], the buckets' masses [NBUCKET], the top-p
 * candidates [V]. */
typedef struct {
    float *p, *bsum, *bmass;
    prob_id *cand;
} row_scratch;

size_t eng_sample_scratch_bytes(int vocab)
{
    return ((size_t)vocab + BLOCK + (size_t)vocab / BLOCK + 1 + NBUCKET) * sizeof(float) +
           (size_t)vocab * sizeof(prob_id);
}

static row_scratch carve(void *scratch, int V)
{
    row_scratch r;
    r.p = scratch;
    r.bsum = r.p + V + BLOCK;
    r.bmass = r.bsum + V / BLOCK + 1;
    r.cand = (prob_id *)(r.bmass + NBUCKET);
    return r;
}

static inline uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof(u));
    return u;
}

eng_status eng_sampler_create(int vocab, float temperature, float top_p, uint64_t seed,
                              eng_sampler **out)
{
    *out = NULL;
    if (vocab <= 0 || !(temperature >= 0.0f) || !isfinite(temperature) || !(top_p >= 0.0f) ||
        !(top_p <= 1.0f))
        return ENG_ERR_INVALID_ARG;
    eng_sampler *s = calloc(1, sizeof(*s));
    if (!s) return ENG_ERR_NOMEM;
    s->vocab = vocab;
    s->temperature = temperature;
    s->top_p = top_p;
    s->rng = seed ? seed : 0x9E3779B97F4A7C15ULL; /* xorshift must not start at 0 */
    if (temperature != 0.0f && !(s->scratch = malloc(eng_sample_scratch_bytes(vocab)))) {
        free(s);
        return ENG_ERR_NOMEM;
    }
    *out = s;
    return ENG_OK;
}

void eng_sampler_free(eng_sampler *s)
{
    if (!s) return;
    free(s->scratch);
    free(s);
}

static float rand_f32(uint64_t *s)
{
    /* xorshift64*: the top 24 bits give a float in [0, 1). */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return (float)((x * 0x2545F4914F6CDD1DULL) >> 40) / 16777216.0f;
}

/* Four floats as one value: GCC and clang turn the arithmetic into SIMD instructions of any
 * target (SSE2 on baseline x86-64, NEON on arm64), without a CPU dispatch. */
typedef float f4 __attribute__((vector_size(16)));
typedef int32_t i4 __attribute__((vector_size(16)));

static inline f4 ld4(const float *p)
{
    f4 v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline f4 splat(float x)
{
    return (f4){x, x, x, x};
}

static inline f4 pick(i4 mask, f4 a, f4 b) /* mask ? a : b, lane by lane */
{
    return (f4)(((i4)a & mask) | ((i4)b & ~mask));
}

/* exp(x) for x <= 0 within 1 ulp (checked over [-87, 0]), 0 below -87 (where expf leaves the normal
 * floats). The polynomial is the classic minimax one for exp on [-ln2/2, ln2/2] (Cephes' expf); 2^n
 * goes straight into the exponent field. Several times the speed of libm's expf, and the same bits
 * on every call, which is all sampling needs of it. */
static inline f4 exp4(f4 x)
{
    i4 under = x < splat(-87.0f);
    x = pick(under, splat(-87.0f), x);
    const f4 magic = splat(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    f4 t = x * splat(1.44269504f) + magic, n = t - magic;
    f4 r = x - n * splat(0.693359375f) - n * splat(-2.12194440e-4f);
    f4 q = splat(1.9875691500e-4f);
    q = q * r + splat(1.3981999507e-3f);
    q = q * r + splat(8.3334519073e-3f);
    q = q * r + splat(4.1665795894e-2f);
    q = q * r + splat(1.6666665459e-1f);
    q = q * r + splat(5.0000001201e-1f);
    f4 e = q * r * r + r + splat(1.0f);
    i4 bits = (i4)e + (((i4)t - (i4)magic) << 23);
    return (f4)(bits & ~under);
}

static inline float hsum4(f4 v)
{
    return (v[0] + v[2]) + (v[1] + v[3]);
}

/* The largest of v[0..n) and the first index holding it, or -1 when one is not finite. Two
 * passes, each vectorized: the maximum (a non-finite value makes x - x NaN, which the check
 * catches), then its first index. */
static int finite_argmax(const float *v, int n)
{
    f4 m = splat(-INFINITY), bad = splat(0.0f);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        f4 x = ld4(v + i);
        m = pick(x > m, x, m);
        bad += x - x;
    }
    float mx = m[0], nan = hsum4(bad);
    for (int k = 1; k < 4; k++)
        mx = m[k] > mx ? m[k] : mx;
    for (; i < n; i++) {
        nan += v[i] - v[i];
        mx = v[i] > mx ? v[i] : mx;
    }
    if (nan != 0.0f) return -1; /* NaN != 0 too */
    for (i = 0; v[i] != mx; i++)
        ;
    return i;
}

/* p[i] = exp((lg[i] - mx) / T) and the block sums; returns their total. p has room for a last
 * block padded to BLOCK (the padding is 0). */
static float probs(const row_scratch *s, const float *lg, int V, float temperature, float mx)
{
    int nb = (V + BLOCK - 1) / BLOCK;
    f4 vmx = splat(mx), T = splat(temperature);
    float total = 0.0f;
    for (int b = 0; b < nb; b++) {
        f4 acc = splat(0.0f);
        for (int i = b * BLOCK; i < (b + 1) * BLOCK; i += 4) {
            f4 x;
            if (i + 4 <= V) {
                x = ld4(lg + i);
            } else { /* the tail: lanes past V become exp(-inf) = 0 */
                x = splat(-INFINITY);
                for (int k = 0; i + k < V; k++)
                    x[k] = lg[i + k];
            }
            f4 e = exp4((x - vmx) / T); /* a division: 1/T overflows for a tiny T */
            memcpy(s->p + i, &e, sizeof(e));
            acc += e;
        }
        s->bsum[b] = hsum4(acc);
        total += s->bsum[b];
    }
    return total;
}

/* The token whose interval of cumulative probability holds target (ids in order, blocks first);
 * rounding past the end gives the last token with any probability. */
static int walk(const row_scratch *s, int V, float target, int top)
{
    int nb = (V + BLOCK - 1) / BLOCK, last = -1; /* the last block with mass */
    float run = 0.0f;
    for (int b = 0; b < nb; b++) {
        if (s->bsum[b] > 0.0f) last = b;
        if (!(target < run + s->bsum[b])) {
            run += s->bsum[b];
            continue;
        }
        int end = (b + 1) * BLOCK < V ? (b + 1) * BLOCK : V, id = b * BLOCK;
        for (int i = b * BLOCK; i < end; i++) {
            if (s->p[i] > 0.0f) id = i;
            run += s->p[i];
            if (target < run) return i;
        }
        return id; /* the elements summed a hair below the block's sum */
    }
    if (last < 0) return top;
    for (int i = (last + 1) * BLOCK - 1; i >= last * BLOCK; i--)
        if (i < V && s->p[i] > 0.0f) return i;
    return top;
}

static void swap(prob_id *a, prob_id *b)
{
    prob_id t = *a;
    *a = *b;
    *b = t;
}

/* The top-p nucleus of c[0..n): reorders c so that c[0..k) are the k most likely candidates
 * whose mass first exceeds limit (all n if none does) and returns k; *mass gets their sum. A
 * quickselect on probability, so linear on average instead of sorting every candidate: each
 * round splits the range around a pivot into more likely, as likely and less likely parts and
 * keeps whichever holds the boundary. */
static int nucleus(prob_id *c, int n, float limit, float *mass)
{
    int lo = 0, hi = n; /* c[0..lo) are in; the boundary lies in c[lo..hi) */
    float in = 0.0f;
    while (hi - lo > 16) {
        float a = c[lo].p, b = c[lo + (hi - lo) / 2].p, d = c[hi - 1].p;
        float piv = a < b ? (b < d ? b : a < d ? d : a) : (a < d ? a : b < d ? d : b);
        /* c[lo..gt) > piv, c[gt..i) == piv, c[i..lt) not yet seen, c[lt..hi) < piv */
        int gt = lo, lt = hi;
        for (int i = lo; i < lt;) {
            if (c[i].p > piv)
                swap(&c[i++], &c[gt++]);
            else if (c[i].p == piv)
                i++;
            else
                swap(&c[i], &c[--lt]);
        }
        float above = 0.0f;
        for (int i = lo; i < gt; i++)
            above += c[i].p;
        if (in + above > limit) { /* the boundary is among the more likely */
            hi = gt;
            continue;
        }
        in += above;
        for (int i = gt; i < lt; i++) { /* ties, one by one as the partition left them */
            in += c[i].p;
            if (in > limit) return *mass = in, i + 1;
        }
        lo = lt;
    }
    /* A few left: most likely first, as many as the limit needs. */
    for (int i = lo; i < hi; i++) {
        int best = i;
        for (int j = i + 1; j < hi; j++)
            if (c[j].p > c[best].p) best = j;
        swap(&c[i], &c[best]);
        in += c[i].p;
        if (in > limit) return *mass = in, i + 1;
    }
    *mass = in; /* rounding kept the sum at the limit: all that was left is in */
    return hi;
}

int eng_sample_row(void *scratch, const float *logits, int V, float temperature, float top_p,
                   float draw)
{
    /* NaN compares false and inf - inf is NaN: either would leave no candidate (or token 0
     * forever under argmax), so non-finite logits are refused, not sampled. */
    int top = finite_argmax(logits, V);
    if (top < 0 || temperature == 0.0f) return top;
    row_scratch s = carve(scratch, V);
    float sum = probs(&s, logits, V, temperature, logits[top]);
    if (top_p >= 1.0f) return walk(&s, V, draw * sum, top);
    /* Tokens below (1 - top_p) / (V - 1) cannot be in the nucleus: drop them first. The most
     * likely token (p = 1 after subtracting the max) always stays, so top_p 0 keeps only it,
     * as transformers' TopPLogitsWarper does (min_tokens_to_keep 1). */
    float cutoff = V > 1 ? (1.0f - top_p) / (float)(V - 1) * sum : 0.0f;
    if (cutoff > 1.0f) cutoff = 1.0f;
    float limit = top_p * sum, acc = 0.0f;
    memset(s.bmass, 0, NBUCKET * sizeof(float));
    int n = 0;
    for (int i = 0; i < V; i++)
        if (s.p[i] >= cutoff) {
            s.cand[n++] = (prob_id){s.p[i], i};
            s.bmass[BUCKET(s.p[i])] += s.p[i];
        }
    int edge = -1; /* the bucket holding the nucleus' edge; -1: every candidate is in */
    for (int k = NBUCKET - 1; k >= 0; k--)
        if ((acc += s.bmass[k]) > limit) {
            edge = k;
            break;
        }
    /* The candidates of the buckets above the edge first (all in), then the edge's own, among
     * which the nucleus ends; the others are out. */
    int in = 0, end;
    float mass = 0.0f, edge_mass;
    for (int i = 0; i < n; i++)
        if (BUCKET(s.cand[i].p) > edge) {
            mass += s.cand[i].p;
            swap(&s.cand[i], &s.cand[in++]);
        }
    end = in;
    for (int i = in; i < n; i++)
        if (BUCKET(s.cand[i].p) == edge) swap(&s.cand[i], &s.cand[end++]);
    n = in + nucleus(s.cand + in, end - in, limit - mass, &edge_mass);
    mass += edge_mass;
    float target = draw * mass, run = 0.0f;
    for (int i = 0; i < n; i++) {
        run += s.cand[i].p;
        if (target < run) return s.cand[i].id;
    }
    return s.cand[n - 1].id;
}

int eng_sampler_sample(eng_sampler *s, const float *logits)
{
    uint64_t before = s->rng;
    float draw = s->temperature != 0.0f ? rand_f32(&s->rng) : 0.0f;
    int id = eng_sample_row(s->scratch, logits, s->vocab, s->temperature, s->top_p, draw);
    if (id < 0) s->rng = before; /* logits that cannot be sampled spend no draw */
    return id;
}

void eng_sampler_settings(const eng_sampler *s, float *temperature, float *top_p)
{
    *temperature = s->temperature;
    *top_p = s->top_p;
}

float eng_sampler_draw(eng_sampler *s)
{
    return rand_f32(&s->rng);
}
