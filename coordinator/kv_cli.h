/* kv_cli.h — command-line options of the KV cache (live sessions + disk
 * store), shared by the server and the CLI: parse them (getopt_long codes
 * from KV_CLI_OPT_BASE), then build the disk store and the session cache.
 * Flags follow the reference (serving-spec 6.2) plus --kv-ram-mb. */
#ifndef FP_KV_CLI_H
#define FP_KV_CLI_H

#include <getopt.h>
#include <stdio.h>
#include "kv_disk.h"
#include "session_cache.h"

#define KV_CLI_OPT_BASE 3100
enum {
    KV_OPT_DISK_DIR = KV_CLI_OPT_BASE, KV_OPT_DISK_MB, KV_OPT_RAM_MB, KV_OPT_MIN_TOKENS, KV_OPT_COLD_MAX,
    KV_OPT_INTERVAL, KV_OPT_TRIM, KV_OPT_ALIGN, KV_OPT_REWIND,
};

/* Splice into a struct option array. */
#define KV_CLI_LONG_OPTIONS                                                                  \
    {"kv-disk-dir", required_argument, 0, KV_OPT_DISK_DIR},                                  \
    {"kv-disk-space-mb", required_argument, 0, KV_OPT_DISK_MB},                              \
    {"kv-ram-mb", required_argument, 0, KV_OPT_RAM_MB},                                      \
    {"kv-cache-min-tokens", required_argument, 0, KV_OPT_MIN_TOKENS},                        \
    {"kv-cache-cold-max-tokens", required_argument, 0, KV_OPT_COLD_MAX},                     \
    {"kv-cache-continued-interval-tokens", required_argument, 0, KV_OPT_INTERVAL},           \
    {"kv-cache-boundary-trim-tokens", required_argument, 0, KV_OPT_TRIM},                    \
    {"kv-cache-boundary-align-tokens", required_argument, 0, KV_OPT_ALIGN},                  \
    {"kv-rewind-points", required_argument, 0, KV_OPT_REWIND}

typedef struct kv_cli {
    const char *disk_dir;      /* NULL: no disk tier */
    double disk_mb;            /* default 4096 */
    double ram_mb;             /* < 0: auto (up to 4 sessions within a quarter of MemAvailable) */
    int rewind_points;
    kv_policy policy;          /* set anchor_user / anchor_assistant before kv_cli_apply */
} kv_cli;

typedef struct kv_setup {
    kv_disk *disk;             /* NULL without --kv-disk-dir */
    session_cache *cache;
} kv_setup;

void kv_cli_init(kv_cli *c);
/* 1 = handled, 0 = not a KV option, -1 = bad value (err filled). */
int kv_cli_option(kv_cli *c, int opt, const char *arg, char *err, size_t errlen);
void kv_cli_usage(FILE *f);
/* Open the store (if asked) and the cache for sessions of ctx tokens.
 * log/ud receive the store's and the cache's messages (NULL = quiet). */
int kv_cli_apply(const kv_cli *c, fp_engine *e, int ctx, const fwd_observer *obs, kv_log_fn log, void *ud,
                 kv_setup *s, char *err, size_t errlen);
/* Close the cache (shutdown checkpoints) and then the store. */
void kv_cli_close(kv_setup *s);

#endif
