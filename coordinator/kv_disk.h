/* kv_disk.h — the disk KV store: session checkpoints that survive restarts.
 *
 * Owns one directory (--kv-disk-dir) of checkpoint files, each a session
 * snapshot (kv_snapshot.h) of a token prefix, named by the SHA-256 of that
 * prefix, inside our own versioned container (docs/kv-cache.md): a header
 * with magic, version, model fingerprint, key, token count, payload length,
 * payload SHA-256 and a header SHA-256. Files are written to a temporary
 * name, fsync'ed, renamed, and the directory fsync'ed, so a crash leaves
 * either the old state or the complete new file. Every file is checked before
 * use; files for another model, of an unknown version, truncated, or with a
 * bad checksum are skipped with a logged reason and never loaded.
 *
 * Also owns the save policy knobs of the reference (min tokens, cold-save
 * limit, tail trim, alignment, continued interval) as pure functions;
 * session_cache decides when to call kv_disk_save with them.
 *
 * The in-memory index (key, token count, size, last use) is read from the
 * file headers at open. Disk use, counted as the files' byte sizes including
 * the one being written, never exceeds the budget: room is made first by
 * deleting least-recently-used checkpoints. A lock file keeps a second
 * process from using the same directory. Thread-safe. */
#ifndef FP_KV_DISK_H
#define FP_KV_DISK_H

#include <stddef.h>
#include <stdint.h>
#include "engine.h"

#define KV_DISK_VERSION 1u
#define KV_DISK_HEADER_BYTES 176u
#define KV_DISK_SUFFIX ".fpkv"

enum kv_save_reason {
    KV_SAVE_UNKNOWN = 0, KV_SAVE_COLD = 1, KV_SAVE_CONTINUED = 2, KV_SAVE_EVICT = 3, KV_SAVE_SHUTDOWN = 4,
    KV_SAVE_EXPLICIT = 5,
};
const char *kv_save_reason_name(int reason);

/* Messages about skipped files, saves, loads and evictions, one line each
 * without a trailing newline. NULL = silent. */
typedef void (*kv_log_fn)(void *ud, const char *msg);

/* ---- policy (serving-spec 5.6, reference defaults) ------------------------ */
typedef struct kv_policy {
    int min_tokens;            /* no checkpoint shorter than this (512) */
    int cold_max_tokens;       /* cold saves only for prompts up to this; 0 = never (30000) */
    int continued_interval;    /* save while growing every ~this many tokens; 0 = never (10000) */
    int boundary_trim;         /* cold save drops this many tail tokens (32) ... */
    int boundary_align;        /* ... and aligns down to a multiple of this; 0 = no alignment (2048) */
    int32_t anchor_user;       /* token ids of the chat anchor (User / Assistant markers); */
    int32_t anchor_assistant;  /* -1 = no anchor: trim/align only */
} kv_policy;

void kv_policy_defaults(kv_policy *p);
int kv_policy_check(const kv_policy *p, char *err, size_t errlen);
/* Length of the cold checkpoint for a cache-miss prompt of n tokens, 0 if
 * none: the chat anchor (index of the last User marker before the first
 * Assistant marker) if >= min; else n - trim aligned down if that is >= min;
 * else n. 0 when n < min, n > cold_max or cold_max == 0. */
int kv_policy_cold_len(const kv_policy *p, const int32_t *tokens, int n);
/* Continued-save step: the interval rounded up to the alignment; 0 = off. */
int kv_policy_continued_step(const kv_policy *p);

/* ---- the store ---------------------------------------------------------- */
typedef struct kv_disk kv_disk;

typedef struct kv_disk_opts {
    const char *dir;           /* created (mode 0700) if missing */
    uint64_t budget_bytes;     /* --kv-disk-space-mb; must be > 0 */
    uint8_t fingerprint[32];   /* model identity: kv_disk_model_fingerprint */
    kv_log_fn log;
    void *log_ud;
    /* Optional: called while a checkpoint is written (bytes done / total),
     * e.g. to report progress of multi-GB saves. */
    void (*save_progress)(void *ud, uint64_t done, uint64_t total);
    void *progress_ud;
} kv_disk_opts;

typedef struct kv_disk_stats {
    int files;                 /* valid checkpoints indexed */
    uint64_t bytes, budget;    /* their total size, the budget */
    uint64_t saves, loads, evictions, skipped, rejected;
    /* skipped: files ignored at open (foreign/unknown/damaged); rejected:
     * files that failed verification when loaded (deleted) */
} kv_disk_stats;

/* SHA-256 over the GGUF file size and its header + tensor directory (the
 * bytes before the tensor data): equal for the same model file, different
 * for another model, another quantisation or a re-packed file. */
void kv_disk_model_fingerprint(const model *m, uint8_t out[32]);

kv_disk *kv_disk_open(const kv_disk_opts *o, char *err, size_t errlen);
void kv_disk_close(kv_disk *d);

/* Checkpoint the whole session (its current length). Returns 1 when written,
 * 0 when skipped (already stored -> its last use is refreshed; empty
 * session; larger than the whole budget) with the reason logged, -1 on an
 * I/O error (err filled; the store stays consistent). */
int kv_disk_save(kv_disk *d, fp_session *s, int reason, char *err, size_t errlen);

/* Longest stored prefix of tokens[0..n) with min_tokens <= length <= n,
 * judged by the index only; 0 if none. */
int kv_disk_find(kv_disk *d, const int32_t *tokens, int n, int min_tokens);

/* Load the longest stored prefix of tokens[0..n) (min_tokens <= length <=
 * n) into s, trying shorter ones when a file fails verification (such a
 * file is deleted and logged). s is untouched when nothing matches; after a
 * failed attempt it is left reset, never half-loaded. Returns the loaded token count,
 * 0 if nothing usable, -1 on a hard error (err). */
int kv_disk_load(kv_disk *d, fp_session *s, const int32_t *tokens, int n, int min_tokens, char *err,
                 size_t errlen);

/* Pin (+1) or unpin (-1) the checkpoint of exactly tokens[0..n): eviction
 * never deletes a pinned checkpoint, so a store made just before loading it
 * (e.g. saving the session being replaced) cannot remove it. */
void kv_disk_pin(kv_disk *d, const int32_t *tokens, int n, int delta);

/* Whether a checkpoint of exactly tokens[0..n) is stored. */
int kv_disk_contains(kv_disk *d, const int32_t *tokens, int n);

void kv_disk_stats_get(kv_disk *d, kv_disk_stats *st);
const char *kv_disk_dir(const kv_disk *d);

/* SHA-256 of a token prefix as stored in file names (n int32 LE values). */
void kv_disk_key(const int32_t *tokens, int n, uint8_t out[32]);

#endif
