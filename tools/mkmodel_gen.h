/* mkmodel_gen.h — deterministic pseudo-random tensor bytes for
 * flashpool-mkmodel: the per-tensor random streams, the fast samplers, and
 * the encoding of one chunk of a tensor into its GGUF type.
 *
 * A tensor is cut into fixed chunks (a function of its shape only); chunk c
 * gets its own xoshiro256** stream seeded from SHA-256("seed/name") and c.
 * So a tensor's bytes depend only on the seed, its name and its shape —
 * never on the other tensors, the thread count or the order chunks are made
 * in — and chunks can be generated in parallel. */
#ifndef FP_MKMODEL_GEN_H
#define FP_MKMODEL_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "mkmodel_plan.h"

typedef struct mkmodel_rng { uint64_t s[4]; } mkmodel_rng;

/* Seeds a stream from a 64-bit key (splitmix64 expansion). */
void mkmodel_rng_seed(mkmodel_rng *r, uint64_t key);
uint64_t mkmodel_rng_next(mkmodel_rng *r);

/* x[i] ~ U(lo, hi) (24-bit resolution). */
void mkmodel_fill_uniform(mkmodel_rng *r, float *x, size_t n, float lo, float hi);
/* x[i] ~ approximately N(mean, std): a Binomial(64, 1/2) count smoothed by a
 * uniform jitter, rescaled. Unit variance exactly, kurtosis 2.97, tails to
 * 8 sigma; a few times faster than Box-Muller. */
void mkmodel_fill_normal(mkmodel_rng *r, float *x, size_t n, float mean, float std);

/* Key of a tensor's streams: the first 8 bytes (little-endian) of
 * SHA-256 of "<seed>/<name>". */
uint64_t mkmodel_tensor_key(uint64_t seed, const char *name);

/* Elements per chunk of t (the last chunk may be shorter); a multiple of
 * t's block (and of its row for TID2EID). */
uint64_t mkmodel_chunk_elems(const mkmodel_tensor *t);
uint64_t mkmodel_chunk_count(const mkmodel_tensor *t);
/* Bytes of chunk c of t. */
size_t mkmodel_chunk_bytes(const mkmodel_tensor *t, uint64_t c);
/* Upper bound of mkmodel_chunk_bytes over all tensors, and the float scratch
 * (in elements) mkmodel_gen_chunk needs. */
size_t mkmodel_chunk_max_bytes(void);
size_t mkmodel_scratch_elems(void);

/* Writes chunk c of t (mkmodel_chunk_bytes(t, c) bytes) into out, whose
 * address must be 8-byte aligned. key = mkmodel_tensor_key(seed, t->name). */
void mkmodel_gen_chunk(const mkmodel_tensor *t, uint64_t key, uint64_t c, void *out, float *scratch);

#endif
