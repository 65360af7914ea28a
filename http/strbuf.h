/* strbuf.h — growable byte buffer used by every HTTP/rendering module to build
 * text, JSON and SSE output. Always NUL-terminated after any append, so .s can
 * be handed to C string functions; may also hold NUL bytes (use .n). */
#ifndef FP_STRBUF_H
#define FP_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct strbuf {
    char *s;        /* NULL until the first append */
    size_t n, cap;
    int oom;        /* sticky: an allocation failed, content is truncated */
} strbuf;

#define STRBUF_INIT {NULL, 0, 0, 0}

void sb_free(strbuf *b);
void sb_reset(strbuf *b);                        /* n = 0, keeps memory */
int sb_reserve(strbuf *b, size_t extra);         /* 0 / -1 */
void sb_append(strbuf *b, const void *p, size_t n);
void sb_puts(strbuf *b, const char *s);
void sb_putc(strbuf *b, char c);
void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vprintf(strbuf *b, const char *fmt, va_list ap);
const char *sb_str(const strbuf *b);             /* "" when empty */
char *sb_steal(strbuf *b);                       /* caller frees; buffer reset */
void sb_truncate(strbuf *b, size_t n);

#endif
