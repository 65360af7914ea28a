/* progress.c — stderr progress lines (see progress.h). */
#include "clock.h"
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double now_seconds(void) {
    return fp_now_s();
}

void progress_begin(progress *p, const char *label) {
    p->label = label;
    p->tty = isatty(2);
    p->last_pct = -1;
    p->t0 = now_seconds();
}

void progress_update(progress *p, int64_t done, int64_t total) {
    const int pct = total > 0 ? (int)(100 * done / total) : 100;
    if (pct == p->last_pct || (!p->tty && pct / 10 == p->last_pct / 10 && pct != 100)) return;
    p->last_pct = pct;
    const double el = now_seconds() - p->t0, rate = el > 0 ? done / el : 0;
    if (p->tty) {
        char bar[31];
        for (int i = 0; i < 30; i++) bar[i] = i < pct * 30 / 100 ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%s [%s] %3d%% %lld/%lld (%.1f/s)", p->label, bar, pct, (long long)done, (long long)total, rate);
    } else {
        fprintf(stderr, "%s: %d%% %lld/%lld (%.1f/s)\n", p->label, pct, (long long)done, (long long)total, rate);
    }
}

void progress_end(progress *p) {
    if (p->tty && p->last_pct >= 0) fputc('\n', stderr);
}

void progress_cb(void *ud, int done, int total) { progress_update(ud, done, total); }
