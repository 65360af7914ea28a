/* strbuf.c — growable byte buffer (see strbuf.h). Allocation failure is
 * recorded in .oom instead of aborting so a request can fail cleanly. */
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb_free(strbuf *b) {
    free(b->s);
    b->s = NULL;
    b->n = b->cap = 0;
    b->oom = 0;
}

void sb_reset(strbuf *b) {
    b->n = 0;
    if (b->s) b->s[0] = 0;
}

int sb_reserve(strbuf *b, size_t extra) {
    if (b->oom) return -1;
    if (b->n + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) {
        if (cap > ((size_t)-1) / 2) { b->oom = 1; return -1; }
        cap *= 2;
    }
    char *p = realloc(b->s, cap);
    if (!p) { b->oom = 1; return -1; }
    b->s = p;
    b->cap = cap;
    return 0;
}

void sb_append(strbuf *b, const void *p, size_t n) {
    if (sb_reserve(b, n) < 0) return;
    if (n) memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = 0;
}

void sb_puts(strbuf *b, const char *s) { sb_append(b, s, strlen(s)); }

void sb_putc(strbuf *b, char c) { sb_append(b, &c, 1); }

void sb_vprintf(strbuf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int k = vsnprintf(small, sizeof small, fmt, ap);
    if (k < 0) { va_end(ap2); return; }
    if ((size_t)k < sizeof small) {
        sb_append(b, small, (size_t)k);
    } else if (sb_reserve(b, (size_t)k) == 0) {
        vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap2);
        b->n += (size_t)k;
    }
    va_end(ap2);
}

void sb_printf(strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

const char *sb_str(const strbuf *b) { return b->s ? b->s : ""; }

char *sb_steal(strbuf *b) {
    char *s = b->s;
    if (!s) s = calloc(1, 1);
    b->s = NULL;
    b->n = b->cap = 0;
    b->oom = 0;
    return s;
}

void sb_truncate(strbuf *b, size_t n) {
    if (n < b->n) {
        b->n = n;
        b->s[n] = 0;
    }
}
