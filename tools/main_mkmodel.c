/* main_mkmodel.c — flashpool-mkmodel: writes a synthetic DeepSeek V4 Flash
 * GGUF (tiny for tests, real widths for benchmarks), deterministic per seed.
 * This file owns only the CLI glue and the progress line on stderr; the
 * plan, vocabulary, generators and writer live in tools/mkmodel_*.c. */
#include "mkmodel_opts.h"
#include "mkmodel_write.h"

#include <stdio.h>
#include <unistd.h>

typedef struct progress_state {
    int tty;
    double last;            /* seconds of the last line drawn */
    int drawn;
} progress_state;

static void show_progress(void *ud, const mkmodel_progress *p) {
    progress_state *st = ud;
    /* Redraw in place on a terminal (a few times a second); in a log, a line
     * every 5 seconds. The syncing line is always shown. */
    double gap = st->tty ? 0.2 : 5.0;
    if (!p->syncing && st->drawn && p->seconds - st->last < gap) return;
    st->last = p->seconds;
    st->drawn = 1;
    const double mib = 1024.0 * 1024.0;
    double rate = p->seconds > 0 ? (double)p->bytes_done / mib / p->seconds : 0;
    double left = rate > 0 ? ((double)(p->bytes_total - p->bytes_done) / mib) / rate : 0;
    fprintf(stderr, "%smkmodel: %zu/%zu tensors  %.1f/%.1f MiB  %.1f MiB/s  ETA %.0fs%s%s", st->tty ? "\r" : "",
            p->tensors_done, p->tensors_total, (double)p->bytes_done / mib, (double)p->bytes_total / mib, rate, left,
            p->syncing ? "  (syncing to disk)" : "", st->tty ? "\033[K" : "\n");
    if (st->tty && p->syncing) fputc('\n', stderr);
    fflush(stderr);
}

int main(int argc, char **argv) {
    mkmodel_opts o;
    char err[1024] = "";
    if (mkmodel_opts_parse(argc, argv, &o, err, sizeof err)) {
        fprintf(stderr, "flashpool-mkmodel: %s\n", err);
        return 2;
    }
    if (o.help) {
        mkmodel_usage(stdout);
        return 0;
    }
    if (o.hash_clamped && !o.quiet)
        fprintf(stderr, "flashpool-mkmodel: note: --hash-layers lowered to %u to fit --layers %u\n",
                o.cfg.shape.hash_layers, o.cfg.shape.layers);
    progress_state st = {isatty(STDERR_FILENO), 0, 0};
    mkmodel_result res;
    if (mkmodel_write(&o.cfg, o.out, o.threads, o.quiet ? NULL : show_progress, &st, &res, err, sizeof err)) {
        fprintf(stderr, "flashpool-mkmodel: %s\n", err);
        return 1;
    }
    if (!o.quiet)
        fprintf(stderr, "wrote %s: %zu tensors, %.1f MiB, %zu merges, %.1f s (%.1f MiB/s)\n", o.out, res.n_tensors,
                (double)res.file_bytes / (1024.0 * 1024.0), res.n_merges, res.seconds,
                res.seconds > 0 ? (double)res.file_bytes / (1024.0 * 1024.0) / res.seconds : 0.0);
    return 0;
}
