/* errmsg.h — the one way library code reports an error: format it into the
 * caller's buffer and return -1 (callers print it, libraries never do). */
#ifndef FP_ERRMSG_H
#define FP_ERRMSG_H

#include <stddef.h>

/* vsnprintf into err (ignored when err is NULL or errlen 0); returns -1 so
 * that `return fp_fail(err, errlen, "...", ...);` ends a failing function. */
int fp_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reads a whole text file of at most max_bytes into a NUL-terminated malloc
 * buffer (*len_out = its length, may be NULL). NULL + err naming the file
 * and what went wrong (missing, unreadable, larger than max_bytes). `what`
 * names the file's role in the message ("cluster file"). */
char *fp_read_text_file(const char *path, size_t max_bytes, const char *what, size_t *len_out,
                        char *err, size_t errlen);

#endif
