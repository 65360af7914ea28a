/* progress.h — one-line progress on stderr for long work (model load,
 * prefill): redrawn in place on a terminal, a line every ~10% otherwise. */
#ifndef FP_PROGRESS_H
#define FP_PROGRESS_H

#include <stdint.h>

typedef struct progress {
    const char *label;
    int tty;
    int last_pct;
    double t0;
} progress;

void progress_begin(progress *p, const char *label);
void progress_update(progress *p, int64_t done, int64_t total);   /* units are the caller's */
void progress_end(progress *p);
/* Adapter with the engine's progress_fn signature (ud = progress *). */
void progress_cb(void *ud, int done, int total);
double now_seconds(void);

#endif
