/* main_kbench.c — flashpool-kbench: how close the CPU matvec kernels get to
 * this machine's memory bandwidth.
 *
 * For each weight format and each available kernel ISA it runs y = W·x over
 * a weight matrix far larger than the caches, split over --threads workers,
 * interleaved with streaming reads of the same buffer, and reports GB/s of
 * weights streamed, the share of the streaming bandwidth, rows/s, and
 * whether the result matches the portable kernels (routed-expert formats
 * must match bit for bit; dense ones within rounding). membw_measure's
 * figure is printed alongside for reference. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>

#include "matvec.h"
#include "membw.h"
#include "quant.h"
#include "threadpool.h"

typedef struct {
    int threads;
    long size_mb, bw_mb, cols;
    int reps;
    int csv;
    int isa_mask;    /* bit per enum quant_isa */
    int format_mask; /* bit per k_formats entry */
} kb_opts;

static const struct { int type; const char *name; int expert; } k_formats[] = {
    {QT_Q8_0, "q8_0", 0}, {QT_F16, "f16", 0}, {QT_Q2_K, "q2_k", 1}, {QT_Q4_K, "q4_k", 1}, {QT_IQ2_XXS, "iq2_xxs", 1},
};
enum { N_FORMATS = sizeof k_formats / sizeof k_formats[0] };

static void usage(FILE *f) {
    fprintf(f,
            "usage: flashpool-kbench [options]\n"
            "\n"
            "Measures memory read bandwidth, then the matrix-vector kernels over a\n"
            "weight matrix much larger than the caches, per format and ISA.\n"
            "\n"
            "  --threads N      worker threads (default 2)\n"
            "  --size-mb MB     weight matrix size per format (default 1024)\n"
            "  --cols N         row width in weights (default 4096; multiple of 256)\n"
            "  --bw-mb MB       bandwidth-test buffer (default 1024)\n"
            "  --reps N         timed repetitions, best kept (default 5; portable runs 2)\n"
            "  --isa LIST       comma list of portable,avx2,avx512 or 'all' (default all\n"
            "                   that this CPU supports)\n"
            "  --formats LIST   comma list of q8_0,f16,q2_k,q4_k,iq2_xxs (default all)\n"
            "  --csv            CSV instead of a table\n"
            "  --help           this text\n"
            "\n"
            "Columns: GB/s of weight bytes streamed by the best matvec, the best streaming\n"
            "read of the same buffer measured between those matvecs (a shared host's memory\n"
            "bandwidth drifts), their ratio (%%bw), rows/s, and the comparison with the\n"
            "portable kernels on the same data (routed-expert formats must be bit-identical;\n"
            "dense ones differ by float rounding only). Exit status 1 if an expert format\n"
            "differs. The default run takes about 20-60 s.\n");
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* Comma list -> bit mask over names[]; -1 on an unknown item (named in err). */
static int parse_list(const char *s, const char *const *names, int n, char *err, size_t errlen) {
    if (strcmp(s, "all") == 0) return (1 << n) - 1;
    int mask = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int i = 0; i < n; i++)
            if (strcasecmp(tok, names[i]) == 0) found = i;
        if (found < 0) {
            snprintf(err, errlen, "unknown item '%s'", tok);
            return -1;
        }
        mask |= 1 << found;
    }
    return mask;
}

static int parse_args(int argc, char **argv, kb_opts *o) {
    *o = (kb_opts){.threads = 2, .size_mb = 1024, .bw_mb = 1024, .cols = 4096, .reps = 5,
                   .isa_mask = (1 << QISA_COUNT) - 1, .format_mask = (1 << N_FORMATS) - 1};
    const char *isa_names[QISA_COUNT], *fmt_names[N_FORMATS];
    for (int i = 0; i < QISA_COUNT; i++) isa_names[i] = quant_isa_name((enum quant_isa)i);
    for (int i = 0; i < N_FORMATS; i++) fmt_names[i] = k_formats[i].name;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long v;
        char err[128];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--csv") == 0) {
            o->csv = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "flashpool-kbench: %s needs a value (see --help)\n", a);
            return -1;
        }
        const char *val = argv[++i];
        if (strcmp(a, "--threads") == 0) {
            if (parse_long(val, 1, 256, &v)) goto bad;
            o->threads = (int)v;
        } else if (strcmp(a, "--size-mb") == 0) {
            if (parse_long(val, 1, 1 << 20, &v)) goto bad;
            o->size_mb = v;
        } else if (strcmp(a, "--bw-mb") == 0) {
            if (parse_long(val, 1, 1 << 20, &v)) goto bad;
            o->bw_mb = v;
        } else if (strcmp(a, "--cols") == 0) {
            if (parse_long(val, 256, 1 << 20, &v) || v % 256) goto bad;
            o->cols = v;
        } else if (strcmp(a, "--reps") == 0) {
            if (parse_long(val, 1, 1000, &v)) goto bad;
            o->reps = (int)v;
        } else if (strcmp(a, "--isa") == 0) {
            if ((o->isa_mask = parse_list(val, isa_names, QISA_COUNT, err, sizeof err)) < 0) {
                fprintf(stderr, "flashpool-kbench: --isa: %s (use portable, avx2, avx512 or all)\n", err);
                return -1;
            }
        } else if (strcmp(a, "--formats") == 0) {
            if ((o->format_mask = parse_list(val, fmt_names, N_FORMATS, err, sizeof err)) < 0) {
                fprintf(stderr, "flashpool-kbench: --formats: %s (use q8_0, f16, q2_k, q4_k, iq2_xxs or all)\n", err);
                return -1;
            }
        } else {
            fprintf(stderr, "flashpool-kbench: unknown option %s (see --help)\n", a);
            return -1;
        }
        continue;
    bad:
        fprintf(stderr, "flashpool-kbench: bad value '%s' for %s (see --help)\n", val, a);
        return -1;
    }
    return 0;
}

/* Streaming read of the benchmark's own weight buffer (same pages, same
 * huge-page advice, same 128 KB chunks claimed from a shared counter as
 * matvec): the roofline the kernels are held to. Sums with wide
 * independent adds so the loop is bound by memory, not by the adds. */
#include <stdatomic.h>
#define STREAM_CHUNK (128u << 10)
typedef struct {
    const uint8_t *buf;
    size_t bytes;
    atomic_size_t next;
    uint64_t sink[256];
} stream_job;

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2"))) static uint64_t stream_sum_avx2(const uint8_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    return (uint64_t)_mm256_extract_epi64(a0, 0) + (uint64_t)_mm256_extract_epi64(a0, 3);
}
#endif

static void stream_worker(void *vctx, int ith, int nth) {
    (void)nth;
    stream_job *j = vctx;
    uint64_t s = 0;
    for (;;) {
        const size_t off = atomic_fetch_add_explicit(&j->next, STREAM_CHUNK, memory_order_relaxed);
        if (off >= j->bytes) break;
        const size_t n = j->bytes - off < STREAM_CHUNK ? j->bytes - off : STREAM_CHUNK;
        const uint8_t *p = j->buf + off;
#if defined(__x86_64__)
        if (__builtin_cpu_supports("avx2")) {
            s += stream_sum_avx2(p, n);
            continue;
        }
#endif
        for (size_t i = 0; i + 8 <= n; i += 8) {
            uint64_t v;
            memcpy(&v, p + i, 8);
            s += v;
        }
    }
    j->sink[ith & 255] = s;
}

static double now_s(void);

static double stream_bw(threadpool *tp, const uint8_t *buf, size_t bytes, int reps) {
    stream_job j = {.buf = buf, .bytes = bytes};
    double best = 0;
    for (int r = 0; r < reps; r++) {
        atomic_store(&j.next, 0);
        const double t0 = now_s();
        threadpool_run(tp, stream_worker, &j);
        const double bw = (double)bytes / (now_s() - t0);
        if (bw > best) best = bw;
    }
    return best;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t xs_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Makes random bytes a valid matrix of `type`: sane f16 scales, finite f16
 * weights. Every other byte pattern is a valid code. */
static void patch_weights(int type, uint8_t *w, size_t bytes) {
    const uint16_t scale = f32_to_fp16(1.0f / 512.0f);
    switch (type) {
    case QT_F16: {
        uint16_t *h = (uint16_t *)w;
        for (size_t i = 0; i < bytes / 2; i++) h[i] = (uint16_t)((h[i] & 0x83ffu) | 0x2000u); /* |w| < 2^-7 */
        break;
    }
    case QT_Q8_0:
        for (size_t o = 0; o + sizeof(block_q8_0) <= bytes; o += sizeof(block_q8_0)) memcpy(w + o, &scale, 2);
        break;
    case QT_Q2_K:
        for (size_t o = 0; o + sizeof(block_q2_K) <= bytes; o += sizeof(block_q2_K)) {
            memcpy(w + o + offsetof(block_q2_K, d), &scale, 2);
            memcpy(w + o + offsetof(block_q2_K, dmin), &scale, 2);
        }
        break;
    case QT_Q4_K:
        for (size_t o = 0; o + sizeof(block_q4_K) <= bytes; o += sizeof(block_q4_K)) {
            memcpy(w + o + offsetof(block_q4_K, d), &scale, 2);
            memcpy(w + o + offsetof(block_q4_K, dmin), &scale, 2);
        }
        break;
    case QT_IQ2_XXS:
        for (size_t o = 0; o + sizeof(block_iq2_xxs) <= bytes; o += sizeof(block_iq2_xxs)) memcpy(w + o, &scale, 2);
        break;
    default: break;
    }
}

/* Times `reps` matvecs, each right after a streaming read of the same
 * buffer, so the share of bandwidth is taken against the bandwidth of the
 * same moment (a shared host's memory bandwidth drifts by tens of %). */
static int run_matvec(threadpool *tp, const quant_kernels *k, int type, const uint8_t *w, int64_t rows, int64_t cols,
                      const void *xq, float *y, int reps, double *best, double *best_stream) {
    *best = INFINITY;
    *best_stream = 0;
    const size_t bytes = (size_t)rows * qtype_row_bytes(type, cols);
    for (int r = 0; r < reps; r++) {
        const double sbw = stream_bw(tp, w, bytes, 1);
        if (sbw > *best_stream) *best_stream = sbw;
        const double t0 = now_s();
        if (matvec(tp, k, type, w, rows, cols, xq, y) != 0) return -1;
        const double dt = now_s() - t0;
        if (dt < *best) *best = dt;
    }
    return 0;
}

int main(int argc, char **argv) {
    kb_opts o;
    if (parse_args(argc, argv, &o) != 0) return 2;
    const char *env_isa = getenv("FP_ISA");
    if (env_isa && *env_isa && quant_isa_from_name(env_isa) < 0)
        fprintf(stderr, "flashpool-kbench: warning: FP_ISA='%s' is not portable, avx2 or avx512; ignored\n", env_isa);

    threadpool *tp = threadpool_open(o.threads);
    if (!tp) {
        fprintf(stderr, "flashpool-kbench: cannot start %d threads\n", o.threads);
        return 1;
    }
    const double bw_membw = membw_measure(tp, (size_t)o.bw_mb << 20, 3);
    if (bw_membw <= 0) {
        fprintf(stderr, "flashpool-kbench: cannot allocate %ld MB for the bandwidth test (try --bw-mb 256)\n", o.bw_mb);
        threadpool_close(tp);
        return 1;
    }

    const size_t wbytes = (size_t)o.size_mb << 20;
    uint8_t *w = mmap(NULL, wbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (w == MAP_FAILED) {
        fprintf(stderr, "flashpool-kbench: cannot map %ld MB of weights (try a smaller --size-mb)\n", o.size_mb);
        threadpool_close(tp);
        return 1;
    }
    madvise(w, wbytes, MADV_HUGEPAGE); /* fewer TLB misses while streaming; advisory */
    uint64_t seed = 0x243f6a8885a308d3ULL;
    for (size_t i = 0; i + 8 <= wbytes; i += 8) {
        const uint64_t v = xs_next(&seed);
        memcpy(w + i, &v, 8);
    }

    if (o.csv) printf("format,isa,threads,rows,cols,weight_mb,best_ms,gb_s,stream_gb_s,pct_bw,rows_per_s,vs_portable\n");
    /* Rows are printed at the end, after the bandwidth range is known. */
    typedef struct {
        const char *format, *isa;
        int64_t rows;
        double mb, best_s, gbs, stream;
        char cmp[64];
    } kb_row;
    kb_row res[N_FORMATS * QISA_COUNT];
    int nres = 0;
    double bw_lo = INFINITY, bw_hi = 0;
    int status = 0;
    for (int f = 0; f < N_FORMATS; f++) {
        if (!(o.format_mask & (1 << f))) continue;
        const int type = k_formats[f].type;
        const size_t rb = qtype_row_bytes(type, o.cols);
        const int64_t rows = (int64_t)(wbytes / rb);
        if (rows < 1) {
            fprintf(stderr, "flashpool-kbench: --size-mb %ld holds no %s row of %ld weights\n", o.size_mb, k_formats[f].name, o.cols);
            status = 1;
            continue;
        }
        patch_weights(type, w, (size_t)rows * rb);
        float *x = malloc((size_t)o.cols * sizeof *x);
        void *xq = malloc(matvec_act_bytes(type, o.cols));
        float *y = malloc((size_t)rows * sizeof *y), *yref = malloc((size_t)rows * sizeof *yref);
        if (!x || !xq || !y || !yref) {
            fprintf(stderr, "flashpool-kbench: out of memory\n");
            return 1;
        }
        for (long i = 0; i < o.cols; i++) x[i] = (float)((int64_t)(xs_next(&seed) % 2001) - 1000) / 1000.0f;
        matvec_quantize_act(type, x, o.cols, xq);
        /* The portable result on the same data, for the comparison column. */
        const quant_kernels *pk = quant_kernels_for(QISA_PORTABLE);
        double pbest = 0, pstream = 0;
        int have_ref = 0;
        for (int isa = 0; isa < QISA_COUNT; isa++) {
            if (!(o.isa_mask & (1 << isa))) continue;
            const quant_kernels *k = quant_kernels_for((enum quant_isa)isa);
            if (!k) {
                fprintf(stderr, "flashpool-kbench: %s kernels not available on this CPU/build; skipped\n",
                        quant_isa_name((enum quant_isa)isa));
                continue;
            }
            if (!have_ref) {
                /* Computed once; timed too when portable is on the list. */
                run_matvec(tp, pk, type, w, rows, o.cols, xq, yref, isa == QISA_PORTABLE ? (o.reps < 2 ? o.reps : 2) : 1, &pbest,
                           &pstream);
                have_ref = 1;
            }
            kb_row *r = &res[nres++];
            r->format = k_formats[f].name;
            r->isa = k->name;
            r->rows = rows;
            r->mb = (double)rows * (double)rb / 1048576.0;
            if (isa == QISA_PORTABLE) {
                r->best_s = pbest;
                r->stream = pstream;
                memcpy(y, yref, (size_t)rows * sizeof *y);
            } else if (run_matvec(tp, k, type, w, rows, o.cols, xq, y, o.reps, &r->best_s, &r->stream) != 0) {
                fprintf(stderr, "flashpool-kbench: matvec failed for %s\n", k_formats[f].name);
                return 1;
            }
            r->gbs = (double)rows * (double)rb / r->best_s / 1e9;
            bw_lo = fmin(bw_lo, r->stream);
            bw_hi = fmax(bw_hi, r->stream);
            if (k_formats[f].expert) {
                const int same = memcmp(y, yref, (size_t)rows * sizeof *y) == 0;
                snprintf(r->cmp, sizeof r->cmp, "%s", same ? "identical" : "DIFFERENT");
                if (!same) status = 1;
            } else {
                /* Relative to the largest output: single rows can cancel to
                 * near zero, where any reordering looks large. */
                double maxd = 0, maxy = 0;
                for (int64_t i = 0; i < rows; i++) {
                    maxd = fmax(maxd, fabs((double)y[i] - yref[i]));
                    maxy = fmax(maxy, fabs((double)yref[i]));
                }
                snprintf(r->cmp, sizeof r->cmp, "max|diff|/max|y| %.1e", maxy > 0 ? maxd / maxy : maxd);
            }
        }
        free(x);
        free(xq);
        free(y);
        free(yref);
    }
    if (!o.csv) {
        printf("memory read bandwidth, %d threads: streaming the %ld MB weight buffer %.2f-%.2f GB/s over the run "
               "(%%bw uses the best of the reads interleaved with that row's timings); membw %.2f GB/s\n",
               o.threads, o.size_mb, (nres ? bw_lo : 0) / 1e9, bw_hi / 1e9, bw_membw / 1e9);
        printf("%-8s %-8s %3s %9s %6s %9s %9s %8s %8s %6s %12s  %s\n", "format", "isa", "thr", "rows", "cols", "weight_MB",
               "best_ms", "GB/s", "strm_GB/s", "%bw", "rows/s", "vs portable");
    }
    for (int i = 0; i < nres; i++) {
        const kb_row *r = &res[i];
        const double pct = r->stream > 0 ? 100.0 * r->gbs * 1e9 / r->stream : 0;
        if (o.csv)
            printf("%s,%s,%d,%lld,%ld,%.1f,%.3f,%.3f,%.3f,%.1f,%.0f,%s\n", r->format, r->isa, o.threads, (long long)r->rows,
                   o.cols, r->mb, r->best_s * 1e3, r->gbs, r->stream / 1e9, pct, (double)r->rows / r->best_s, r->cmp);
        else
            printf("%-8s %-8s %3d %9lld %6ld %9.1f %9.2f %8.2f %8.2f %5.1f%% %12.0f  %s\n", r->format, r->isa, o.threads,
                   (long long)r->rows, o.cols, r->mb, r->best_s * 1e3, r->gbs, r->stream / 1e9, pct,
                   (double)r->rows / r->best_s, r->cmp);
    }
    if (o.csv) printf("membw,,%d,,,%ld,,,%.3f,,,\n", o.threads, o.bw_mb, bw_membw / 1e9);
    munmap(w, wbytes);
    threadpool_close(tp);
    if (status) fprintf(stderr, "flashpool-kbench: some SIMD results differ from portable (see vs portable column)\n");
    return status;
}
