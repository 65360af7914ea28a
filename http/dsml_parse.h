/* dsml_parse.h — incremental parser for the DSML tool-call block the model
 * writes after its answer text (serving-spec §3):
 *
 *   "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"N\">\n
 *    <｜DSML｜parameter name=\"K\" string=\"true|false\">V</｜DSML｜parameter>\n
 *    </｜DSML｜invoke>\n</｜DSML｜tool_calls>"
 *
 * Feed the answer bytes (never reasoning) in any chunking; the parser
 * separates visible text from the block, holding back bytes that could still
 * start a block (trailing whitespace, a partial start marker), and yields the
 * calls only when the block has closed and parsed completely — so no client
 * ever receives a partial or invalid call. Byte-by-byte feeding gives the same
 * result as one-shot feeding.
 *
 * Accepted: the canonical markers and the "short" drift "<DSML｜..." (first
 * bar dropped); whitespace between tags; a missing string attribute (means
 * "true"). String values are taken verbatim (the official format has no
 * escaping); string="false" values must be JSON (minified into the
 * arguments) and fall back to a JSON string when they are not. Duplicate
 * parameter names keep the last value. Anything else inside the block is a
 * failure: the block's raw bytes are returned as ordinary text.
 *
 * Arguments are compact JSON objects ({"k":"v","n":3}) in parameter order.
 * text + raw block == every answer byte fed, so the exact sampled bytes can be
 * replayed in the next prompt. */
#ifndef FP_DSML_PARSE_H
#define FP_DSML_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

typedef struct dsml_call {
    char *name;
    char *args;      /* compact JSON object text */
} dsml_call;

typedef struct dsml_param {
    char *name;
    char *json;      /* the value as JSON text */
} dsml_param;

typedef struct dsml_parser {
    int st;                  /* internal state */
    int variant;             /* 0 canonical, 1 short */
    strbuf pend;             /* bytes not yet resolved */
    strbuf text;             /* visible text ready for the caller (drain it) */
    strbuf raw;              /* the block's bytes, from its leading whitespace */
    strbuf tag, val;
    char *inv_name;
    dsml_param *params;
    size_t n_params, cap_params;
    char *par_name;
    bool par_string, json_in_str, json_esc;
    dsml_call *calls;        /* valid once `done` */
    size_t n_calls, cap_calls;
    bool done;               /* the block closed and parsed: stop generating */
    bool failed;             /* some block was rejected (its bytes became text) */
    char err[160];           /* why, for logs */
} dsml_parser;

void dsml_init(dsml_parser *p);
void dsml_free(dsml_parser *p);
void dsml_feed(dsml_parser *p, const char *s, size_t n);
/* End of generation: flushes held text; an unterminated block fails. */
void dsml_finish(dsml_parser *p);
/* True while the next token is DSML syntax rather than free text (tags,
 * attributes, whitespace between tags, JSON structure of a string="false"
 * value, a partial closing tag): a good place for greedy sampling. */
bool dsml_structural(const dsml_parser *p);
/* True while inside a block (text is being withheld). */
bool dsml_in_block(const dsml_parser *p);

#endif
