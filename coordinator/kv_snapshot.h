/* kv_snapshot.h — a session's complete state as a byte stream, and back.
 *
 * Owns the snapshot payload format (version 1, little-endian): the token
 * history, the logits after the last token, and per layer the last
 * min(n_swa, n) raw rows in logical (position) order, the compressed rows,
 * both compressor frontiers, the indexer rows and the indexer frontier.
 * Restoring a FULL snapshot into a fresh session of the same model continues
 * bit-identically to the session it was taken from.
 *
 * A TAIL snapshot leaves out the compressed and indexer rows. Those rows
 * never change once emitted, so a session whose first n tokens equal the
 * snapshot's still holds them: a TAIL snapshot plus such a "donor" session
 * rewinds the donor (or forks a copy of its prefix into another session)
 * exactly, at a cost independent of the context length (session_cache uses
 * this for in-RAM rewind points). The format does not describe the disk
 * container (kv_disk.c wraps it with a header and checksums). */
#ifndef FP_KV_SNAPSHOT_H
#define FP_KV_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "engine.h"

#define KV_SNAP_MAGIC 0x534B5046u   /* "FPKS" */
#define KV_SNAP_VERSION 1u

enum kv_snap_kind { KV_SNAP_FULL = 0, KV_SNAP_TAIL = 1 };

/* Byte sinks and sources, so the same code serialises to memory, to a FILE,
 * or through a hashing wrapper. Both return 0, or -1 on failure (a source
 * must deliver exactly n bytes). */
typedef struct kv_sink {
    int (*write)(void *ud, const void *p, size_t n);
    void *ud;
} kv_sink;
typedef struct kv_source {
    int (*read)(void *ud, void *p, size_t n);
    void *ud;
} kv_source;

/* Exact payload size of a snapshot of n_tokens tokens for a model. */
size_t kv_snapshot_bytes(const model_hparams *hp, int n_tokens, int kind);
/* Size of a snapshot of s as it is now. */
size_t kv_snapshot_size(fp_session *s, int kind);

int kv_snapshot_write(fp_session *s, int kind, const kv_sink *out, char *err, size_t errlen);
/* Replace s's whole state with a FULL snapshot. Everything the header says is
 * checked against s (model geometry, context, row counts) before s is
 * touched; if the stream fails part-way s is reset and -1 returned, so a
 * failed restore never leaves a half-loaded session behind. */
int kv_snapshot_read(fp_session *s, const kv_source *in, char *err, size_t errlen);

/* Convenience wrappers. save_buf allocates *buf (caller frees). */
int kv_snapshot_save_buf(fp_session *s, int kind, void **buf, size_t *len, char *err, size_t errlen);
/* Into a caller buffer of cap bytes (reused across saves); -1 if too small. */
int kv_snapshot_save_into(fp_session *s, int kind, void *buf, size_t cap, size_t *len, char *err, size_t errlen);
int kv_snapshot_load_buf(fp_session *s, const void *buf, size_t len, char *err, size_t errlen);
int kv_snapshot_save_file(fp_session *s, FILE *f, char *err, size_t errlen);
int kv_snapshot_load_file(fp_session *s, FILE *f, char *err, size_t errlen);

/* Token count and kind recorded in a snapshot buffer; -1 if not a snapshot. */
int kv_snapshot_peek(const void *buf, size_t len, int *n_tokens, int *kind);
/* The token ids stored in a snapshot buffer (points into buf), NULL if bad. */
const int32_t *kv_snapshot_tokens(const void *buf, size_t len, int *n_tokens);

/* Make dst hold exactly the state the TAIL snapshot was taken at: tokens,
 * logits, raw window and frontiers from the snapshot, compressed and indexer
 * rows copied from donor, whose first n tokens must equal the snapshot's.
 * dst may be donor (rewind in place) or another session of the same model
 * (fork). On a failed check nothing is modified; -1 with err. */
int kv_snapshot_restore_tail(fp_session *dst, fp_session *donor, const void *buf, size_t len,
                             char *err, size_t errlen);

#endif
