/* errmsg.c — error formatting and the small whole-file reader the JSON
 * config loaders share (errmsg.h). */
#include "errmsg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fp_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

char *fp_read_text_file(const char *path, size_t max_bytes, const char *what, size_t *len_out,
                        char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return fp_fail(err, errlen, "cannot open %s %s: %s", what, path, strerror(errno)), NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && (size_t)n <= max_bytes && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = 0;
        fclose(f);
        if (len_out) *len_out = (size_t)n;
        return buf;
    }
    const int too_big = n >= 0 && (size_t)n > max_bytes;
    fclose(f);
    free(buf);
    if (too_big) return fp_fail(err, errlen, "%s %s is larger than %zu bytes", what, path, max_bytes), NULL;
    return fp_fail(err, errlen, "cannot read %s %s (I/O error or out of memory)", what, path), NULL;
}
