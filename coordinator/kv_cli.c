/* kv_cli.c — KV cache command-line options and setup (see kv_cli.h). */
#include "kv_cli.h"

#include <stdlib.h>
#include <string.h>

void kv_cli_init(kv_cli *c) {
    memset(c, 0, sizeof *c);
    c->disk_mb = 4096;
    c->ram_mb = -1;
    c->rewind_points = 3;
    kv_policy_defaults(&c->policy);
}

static int parse_int(const char *s, long lo, long hi, int *out) {
    char *end;
    const long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_mb(const char *s, double *out) {
    char *end;
    const double v = strtod(s, &end);
    if (end == s || *end || !(v > 0) || v > 1e9) return -1;
    *out = v;
    return 0;
}

int kv_cli_option(kv_cli *c, int opt, const char *arg, char *err, size_t errlen) {
    kv_policy *p = &c->policy;
    switch (opt) {
    case KV_OPT_DISK_DIR:
        if (!*arg) return snprintf(err, errlen, "--kv-disk-dir wants a directory"), -1;
        c->disk_dir = arg;
        return 1;
    case KV_OPT_DISK_MB:
        if (parse_mb(arg, &c->disk_mb)) return snprintf(err, errlen, "--kv-disk-space-mb wants a size in MiB > 0"), -1;
        return 1;
    case KV_OPT_RAM_MB:
        if (parse_mb(arg, &c->ram_mb)) return snprintf(err, errlen, "--kv-ram-mb wants a size in MiB > 0"), -1;
        return 1;
    case KV_OPT_MIN_TOKENS:
        if (parse_int(arg, 1, 1L << 30, &p->min_tokens))
            return snprintf(err, errlen, "--kv-cache-min-tokens wants an integer > 0"), -1;
        return 1;
    case KV_OPT_COLD_MAX:
        if (parse_int(arg, 0, 1L << 30, &p->cold_max_tokens))
            return snprintf(err, errlen, "--kv-cache-cold-max-tokens wants an integer >= 0 (0 = no cold saves)"), -1;
        return 1;
    case KV_OPT_INTERVAL:
        if (parse_int(arg, 0, 1L << 30, &p->continued_interval))
            return snprintf(err, errlen, "--kv-cache-continued-interval-tokens wants an integer >= 0 (0 = off)"), -1;
        return 1;
    case KV_OPT_TRIM:
        if (parse_int(arg, 0, 1L << 30, &p->boundary_trim))
            return snprintf(err, errlen, "--kv-cache-boundary-trim-tokens wants an integer >= 0"), -1;
        return 1;
    case KV_OPT_ALIGN:
        if (parse_int(arg, 0, 1L << 30, &p->boundary_align))
            return snprintf(err, errlen, "--kv-cache-boundary-align-tokens wants an integer >= 0 (0 = none)"), -1;
        return 1;
    case KV_OPT_REWIND:
        if (parse_int(arg, 0, 64, &c->rewind_points))
            return snprintf(err, errlen, "--kv-rewind-points wants an integer 0..64"), -1;
        return 1;
    default: return 0;
    }
}

void kv_cli_usage(FILE *f) {
    fprintf(f,
        "\n"
        "KV cache (live sessions in RAM, checkpoints on disk; docs/kv-cache.md):\n"
        "      --kv-ram-mb N       RAM for live sessions and their rewind points (default:\n"
        "                          up to 4 sessions within a quarter of available memory)\n"
        "      --kv-rewind-points N  rewind points kept per session (default 3, 0 = off)\n"
        "      --kv-disk-dir DIR   keep checkpoints in DIR (created; one server per DIR)\n"
        "      --kv-disk-space-mb N  disk budget in MiB (default 4096)\n"
        "      --kv-cache-min-tokens N  shortest checkpoint (default 512)\n"
        "      --kv-cache-cold-max-tokens N  cold saves only for prompts up to N (default\n"
        "                          30000, 0 = none)\n"
        "      --kv-cache-continued-interval-tokens N  checkpoint a growing session about\n"
        "                          every N tokens (default 10000, 0 = never)\n"
        "      --kv-cache-boundary-trim-tokens N  cold save drops N tail tokens (default 32)\n"
        "      --kv-cache-boundary-align-tokens N  and aligns down to N (default 2048, 0 = no)\n");
}

int kv_cli_apply(const kv_cli *c, fp_engine *e, int ctx, const fwd_observer *obs, kv_log_fn log, void *ud,
                 kv_setup *s, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (kv_policy_check(&c->policy, err, errlen)) return -1;
    if (c->disk_dir) {
        kv_disk_opts o = {.dir = c->disk_dir, .budget_bytes = (uint64_t)(c->disk_mb * 1048576.0), .log = log,
                          .log_ud = ud};
        kv_disk_model_fingerprint(engine_model(e), o.fingerprint);
        if (!(s->disk = kv_disk_open(&o, err, errlen))) return -1;
    }
    session_cache_opts so;
    session_cache_opts_defaults(&so);
    so.ctx = ctx;
    so.rewind_points = c->rewind_points;
    so.disk = s->disk;
    so.policy = c->policy;
    so.obs = obs;
    so.log = log;
    so.log_ud = ud;
    if (c->ram_mb > 0) {
        so.ram_bytes = (uint64_t)(c->ram_mb * 1048576.0);
    } else {
        /* Auto: room for up to 4 sessions, but never more than a quarter of
         * what the machine has free (at least one session). */
        so.max_sessions = 4;
        const uint64_t one = session_cache_session_bytes(e, ctx, c->rewind_points);
        const uint64_t quarter = mem_available_bytes() / 4;   /* 0 if unknown */
        so.ram_bytes = quarter > one ? quarter : one;
    }
    if (!(s->cache = session_cache_open(e, &so, err, errlen))) {
        kv_disk_close(s->disk);
        s->disk = NULL;
        return -1;
    }
    return 0;
}

void kv_cli_close(kv_setup *s) {
    session_cache_close(s->cache);
    kv_disk_close(s->disk);
    s->cache = NULL;
    s->disk = NULL;
}
