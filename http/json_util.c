/* json_util.c — JSON escaping/printing/minifying and type-checked getters
 * (see json_util.h). The printers walk cJSON trees; the Python-style printer
 * exists because the official DeepSeek V4 prompt format embeds
 * json.dumps(ensure_ascii=False) text (tool schemas, non-string arguments). */
#include "json_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid/truncated. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

size_t utf8_complete_len(const char *s, size_t n) {
    /* Look back at most 3 bytes for a lead byte whose sequence is cut off. */
    const unsigned char *u = (const unsigned char *)s;
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = u[n - back];
        if ((c & 0xC0) == 0x80) continue;          /* continuation: keep looking */
        size_t need = (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 1;
        if (need > back) {
            /* Hold back only if what we have so far could still become valid. */
            for (size_t i = 1; i < back; i++)
                if ((u[n - back + i] & 0xC0) != 0x80) return n;
            return n - back;
        }
        return n;
    }
    return n;
}

void json_escape_inner(strbuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        unsigned char c = u[i];
        const char *esc = NULL;
        char tmp[8];
        size_t adv = 1;
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c == '\b') esc = "\\b";
        else if (c == '\f') esc = "\\f";
        else if (c < 0x20) { snprintf(tmp, sizeof tmp, "\\u%04x", c); esc = tmp; }
        else if (c >= 0x80) {
            adv = utf8_seq_len(u + i, n - i);
            if (adv == 0) { esc = "\xEF\xBF\xBD"; adv = 1; }
        }
        if (esc) {
            if (run) sb_append(b, s + i - run, run);
            run = 0;
            sb_puts(b, esc);
            i += adv;
        } else {
            run += adv;
            i += adv;
        }
    }
    if (run) sb_append(b, s + n - run, run);
}

void json_escape(strbuf *b, const char *s, size_t n) {
    sb_putc(b, '"');
    json_escape_inner(b, s, n);
    sb_putc(b, '"');
}

static void print_number(strbuf *b, double d) {
    if (isnan(d) || isinf(d)) { sb_puts(b, "null"); return; }
    if (d == 0) { sb_putc(b, '0'); return; }
    if (d == trunc(d) && fabs(d) < 1e16) { sb_printf(b, "%.0f", d); return; }
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
    /* Python repr writes large exponents as e+16 (C does too) and always keeps
     * at least two exponent digits, which C's %g also does. */
    sb_puts(b, buf);
}

static void print_value(strbuf *b, const cJSON *v, int py) {
    if (!v) { sb_puts(b, "null"); return; }
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring ? v->valuestring : "";
        json_escape(b, s, strlen(s));
    } else if (cJSON_IsNumber(v)) {
        print_number(b, v->valuedouble);
    } else if (cJSON_IsTrue(v)) {
        sb_puts(b, "true");
    } else if (cJSON_IsFalse(v)) {
        sb_puts(b, "false");
    } else if (cJSON_IsArray(v)) {
        sb_putc(b, '[');
        int first = 1;
        for (const cJSON *c = v->child; c; c = c->next) {
            if (!first) sb_puts(b, py ? ", " : ",");
            first = 0;
            print_value(b, c, py);
        }
        sb_putc(b, ']');
    } else if (cJSON_IsObject(v)) {
        sb_putc(b, '{');
        int first = 1;
        for (const cJSON *c = v->child; c; c = c->next) {
            if (!first) sb_puts(b, py ? ", " : ",");
            first = 0;
            const char *k = c->string ? c->string : "";
            json_escape(b, k, strlen(k));
            sb_puts(b, py ? ": " : ":");
            print_value(b, c, py);
        }
        sb_putc(b, '}');
    } else if (cJSON_IsRaw(v)) {
        sb_puts(b, v->valuestring ? v->valuestring : "null");
    } else {
        sb_puts(b, "null");
    }
}

void json_print_compact(strbuf *b, const cJSON *v) { print_value(b, v, 0); }

void json_print_py(strbuf *b, const cJSON *v) { print_value(b, v, 1); }

void json_minify(strbuf *b, const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < n && s[j] != '"') j += (s[j] == '\\' && j + 1 < n) ? 2 : 1;
            if (j < n) j++;
            sb_append(b, s + i, j - i);
            i = j;
        } else {
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') sb_putc(b, c);
            i++;
        }
    }
}

cJSON *json_parse_n(const char *s, size_t n) {
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    if (!v) return NULL;
    /* cJSON stops after the first value; anything but whitespace after it
     * means the text was not one JSON value. */
    for (const char *p = end; p && p < s + n; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
            cJSON_Delete(v);
            return NULL;
        }
    }
    return v;
}

/* ---- getters ----------------------------------------------------------- */

const char *jpath_key(char *buf, size_t cap, const char *where, const char *key) {
    if (where && where[0]) snprintf(buf, cap, "%s.%s", where, key);
    else snprintf(buf, cap, "%s", key);
    return buf;
}

const char *jpath_idx(char *buf, size_t cap, const char *where, int idx) {
    snprintf(buf, cap, "%s[%d]", where ? where : "", idx);
    return buf;
}

static const cJSON *field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    return v;
}

static int type_error(api_error *e, const char *where, const char *key, const char *want) {
    char path[160];
    jpath_key(path, sizeof path, where, key);
    api_error_set(e, 400, ERRK_INVALID, path, "'%s' must be %s", path, want);
    return -1;
}

int jget_str(const cJSON *obj, const char *key, const char *where, const char **out, api_error *e) {
    const cJSON *v = field(obj, key);
    if (!v) return 0;
    if (!cJSON_IsString(v)) return type_error(e, where, key, "a string");
    *out = v->valuestring;
    return 1;
}

int jget_num(const cJSON *obj, const char *key, const char *where, double *out, api_error *e) {
    const cJSON *v = field(obj, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return type_error(e, where, key, "a number");
    *out = v->valuedouble;
    return 1;
}

int jget_int(const cJSON *obj, const char *key, const char *where, long long *out, api_error *e) {
    const cJSON *v = field(obj, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != trunc(v->valuedouble) ||
        fabs(v->valuedouble) > 9.0e15)
        return type_error(e, where, key, "an integer");
    *out = (long long)v->valuedouble;
    return 1;
}

int jget_bool(const cJSON *obj, const char *key, const char *where, bool *out, api_error *e) {
    const cJSON *v = field(obj, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return type_error(e, where, key, "a boolean");
    *out = cJSON_IsTrue(v);
    return 1;
}

int jget_obj(const cJSON *obj, const char *key, const char *where, const cJSON **out, api_error *e) {
    const cJSON *v = field(obj, key);
    if (!v) return 0;
    if (!cJSON_IsObject(v)) return type_error(e, where, key, "an object");
    *out = v;
    return 1;
}

int jget_arr(const cJSON *obj, const char *key, const char *where, const cJSON **out, api_error *e) {
    const cJSON *v = field(obj, key);
    if (!v) return 0;
    if (!cJSON_IsArray(v)) return type_error(e, where, key, "an array");
    *out = v;
    return 1;
}
