/* json_util.h — JSON helpers on top of cJSON: string escaping, a compact
 * printer and a Python-json.dumps-style printer (the official DeepSeek V4
 * encoder embeds json.dumps(..., ensure_ascii=False) text in prompts),
 * minification of already-valid JSON text, UTF-8 boundary helpers, and
 * type-checked field getters that fill an api_error naming the bad field. */
#ifndef FP_JSON_UTIL_H
#define FP_JSON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <cJSON.h>

#include "errors.h"
#include "strbuf.h"

/* Appends s[0..n) as a quoted JSON string. Escapes '"', '\\' and bytes
 * < 0x20 (\n \r \t \b \f short forms, else \u00XX); keeps other UTF-8 as is;
 * invalid UTF-8 bytes become U+FFFD so the output is always valid JSON. */
void json_escape(strbuf *b, const char *s, size_t n);
/* Same without the surrounding quotes (for streaming a string piecewise). */
void json_escape_inner(strbuf *b, const char *s, size_t n);

/* Compact JSON: no whitespace, members in their order ("k":v,"k2":v2). */
void json_print_compact(strbuf *b, const cJSON *v);
/* Python json.dumps(v, ensure_ascii=False): ", " and ": " separators.
 * Numbers: integral values below 1e16 print as integers, others as the
 * shortest round-trip repr (Python's float repr rules). */
void json_print_py(strbuf *b, const cJSON *v);

/* Removes whitespace outside strings from JSON text (assumed valid). */
void json_minify(strbuf *b, const char *s, size_t n);

/* Parses exactly s[0..n) as one JSON value (trailing whitespace allowed).
 * Returns NULL when invalid. Caller cJSON_Delete()s. */
cJSON *json_parse_n(const char *s, size_t n);

/* Length of the longest prefix of s[0..n) that does not end inside an
 * incomplete (but so far valid) UTF-8 sequence. */
size_t utf8_complete_len(const char *s, size_t n);

/* ---- type-checked getters --------------------------------------------
 * `where` is the JSON path of obj used in error messages ("" for the body,
 * "messages[2]", ...). A JSON null counts as absent. Return 1 when present
 * and well-typed, 0 when absent, -1 on a type error (e filled, 400). */
int jget_str(const cJSON *obj, const char *key, const char *where, const char **out, api_error *e);
int jget_num(const cJSON *obj, const char *key, const char *where, double *out, api_error *e);
int jget_int(const cJSON *obj, const char *key, const char *where, long long *out, api_error *e);
int jget_bool(const cJSON *obj, const char *key, const char *where, bool *out, api_error *e);
int jget_obj(const cJSON *obj, const char *key, const char *where, const cJSON **out, api_error *e);
int jget_arr(const cJSON *obj, const char *key, const char *where, const cJSON **out, api_error *e);
/* Builds "where.key" / "where[i]" into buf (for nested error paths). */
const char *jpath_key(char *buf, size_t cap, const char *where, const char *key);
const char *jpath_idx(char *buf, size_t cap, const char *where, int idx);

#endif
