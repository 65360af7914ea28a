/* test_dsml.c — the streaming DSML tool-call parser (http/dsml_parse.c),
 * the reasoning/answer/stop-sequence splitter around it (http/gen_text.c),
 * the exact-replay store (http/tool_replay.c) and the previous_response_id
 * store (http/resp_store.c). Key property: any chunking of the input (here
 * one-shot and byte-by-byte) gives the same text, calls and raw block, and
 * text + raw block always equals the input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dsml_parse.h"
#include "gen_text.h"
#include "resp_store.h"
#include "strbuf.h"
#include "tool_replay.h"

#define B "\xEF\xBD\x9C"
#define OPEN "<" B "DSML" B
#define CLOSE "</" B "DSML" B

typedef struct parsed {
    char *text, *raw;
    size_t n_calls;
    char *names[8], *args[8];
    bool done, failed;
} parsed;

static void parsed_free(parsed *p) {
    free(p->text);
    free(p->raw);
    for (size_t i = 0; i < p->n_calls; i++) {
        free(p->names[i]);
        free(p->args[i]);
    }
}

/* Feeds s in chunks of `step` bytes (0 = all at once), draining text as a
 * streaming caller would. */
static parsed run(const char *s, size_t step) {
    dsml_parser d;
    dsml_init(&d);
    strbuf text = STRBUF_INIT;
    size_t n = strlen(s);
    if (!step) step = n ? n : 1;
    for (size_t i = 0; i < n; i += step) {
        dsml_feed(&d, s + i, i + step <= n ? step : n - i);
        sb_append(&text, d.text.s ? d.text.s : "", d.text.n);
        sb_reset(&d.text);
    }
    dsml_finish(&d);
    sb_append(&text, d.text.s ? d.text.s : "", d.text.n);
    parsed p = {0};
    p.text = sb_steal(&text);
    p.raw = strndup(d.raw.s ? d.raw.s : "", d.raw.n);
    p.done = d.done;
    p.failed = d.failed;
    p.n_calls = d.done ? d.n_calls : 0;
    for (size_t i = 0; i < p.n_calls && i < 8; i++) {
        p.names[i] = strdup(d.calls[i].name);
        p.args[i] = strdup(d.calls[i].args);
    }
    dsml_free(&d);
    return p;
}

/* One-shot and byte-by-byte agree, and text + raw == input. */
static parsed run_both(const char *s) {
    parsed a = run(s, 0), b = run(s, 1), c = run(s, 7);
    assert_string_equal(a.text, b.text);
    assert_string_equal(a.raw, b.raw);
    assert_string_equal(a.text, c.text);
    assert_string_equal(a.raw, c.raw);
    assert_int_equal(a.n_calls, b.n_calls);
    assert_int_equal(a.done, b.done);
    for (size_t i = 0; i < a.n_calls; i++) {
        assert_string_equal(a.names[i], b.names[i]);
        assert_string_equal(a.args[i], b.args[i]);
        assert_string_equal(a.args[i], c.args[i]);
    }
    strbuf all = STRBUF_INIT;
    sb_puts(&all, a.text);
    sb_puts(&all, a.raw);
    assert_string_equal(all.s ? all.s : "", s);
    sb_free(&all);
    parsed_free(&b);
    parsed_free(&c);
    return a;
}

static void test_canonical_block(void **st) {
    (void)st;
    const char *s = "Let me check.\n\n" OPEN "tool_calls>\n" OPEN "invoke name=\"get_weather\">\n"
                    OPEN "parameter name=\"city\" string=\"true\">Paris & \"Lyon\"" CLOSE "parameter>\n"
                    OPEN "parameter name=\"days\" string=\"false\">3" CLOSE "parameter>\n"
                    CLOSE "invoke>\n" CLOSE "tool_calls>";
    parsed p = run_both(s);
    assert_true(p.done);
    assert_false(p.failed);
    assert_string_equal(p.text, "Let me check.");
    assert_int_equal(p.n_calls, 1);
    assert_string_equal(p.names[0], "get_weather");
    assert_string_equal(p.args[0], "{\"city\":\"Paris & \\\"Lyon\\\"\",\"days\":3}");
    assert_true(strncmp(p.raw, "\n\n" OPEN "tool_calls>", strlen("\n\n" OPEN "tool_calls>")) == 0);
    parsed_free(&p);
}

static void test_values(void **st) {
    (void)st;
    /* multi-line string with markup, JSON with whitespace (minified), nested
     * objects, a JSON string holding a closing-looking tag, invalid JSON
     * (kept as a string), empty non-string (null), missing string attribute
     * (a string), duplicate parameter (last wins), and a second invoke */
    const char *s = OPEN "tool_calls>\n" OPEN "invoke name=\"write\">\n"
                    OPEN "parameter name=\"content\" string=\"true\">int main() {\n  if (a < b && c > d) return 1;\n}\n"
                    CLOSE "parameter>\n"
                    OPEN "parameter name=\"opts\" string=\"false\"> { \"a\" : [1, 2 ,{\"b\": \"x y\"}],\n \"t\": true } "
                    CLOSE "parameter>\n"
                    OPEN "parameter name=\"tag\" string=\"false\">\"</" CLOSE "param\"" CLOSE "parameter>\n"
                    OPEN "parameter name=\"bad\" string=\"false\">{oops" CLOSE "parameter>\n"
                    OPEN "parameter name=\"none\" string=\"false\">  " CLOSE "parameter>\n"
                    OPEN "parameter name=\"plain\">42" CLOSE "parameter>\n"
                    OPEN "parameter name=\"content\" string=\"true\">second" CLOSE "parameter>\n"
                    CLOSE "invoke>\n" OPEN "invoke name=\"noop\">\n" CLOSE "invoke>\n" CLOSE "tool_calls>";
    parsed p = run_both(s);
    assert_true(p.done);
    assert_string_equal(p.text, "");
    assert_int_equal(p.n_calls, 2);
    assert_string_equal(p.names[0], "write");
    assert_string_equal(p.args[0],
                        "{\"content\":\"second\",\"opts\":{\"a\":[1,2,{\"b\":\"x y\"}],\"t\":true},"
                        "\"tag\":\"</" CLOSE "param\",\"bad\":\"{oops\",\"none\":null,\"plain\":\"42\"}");
    assert_string_equal(p.names[1], "noop");
    assert_string_equal(p.args[1], "{}");
    parsed_free(&p);
}

static void test_short_variant_and_tail(void **st) {
    (void)st;
    const char *s = "ok\n<DSML" B "tool_calls>\n<DSML" B "invoke name=\"ls\">\n<DSML" B
                    "parameter name=\"path\" string=\"true\">/tmp</DSML" B "parameter>\n</DSML" B
                    "invoke>\n</DSML" B "tool_calls>\n\n";
    parsed p = run_both(s);
    assert_true(p.done);
    assert_string_equal(p.text, "ok");
    assert_string_equal(p.args[0], "{\"path\":\"/tmp\"}");
    /* bytes after the block stay in the raw block (exact replay) */
    size_t L = strlen(p.raw);
    assert_true(L > 2 && strcmp(p.raw + L - 2, "\n\n") == 0);
    parsed_free(&p);
}

static void test_plain_text_untouched(void **st) {
    (void)st;
    const char *texts[] = {"a < b and <tool_calls> are just text  ", "", "  \n\n", "x <" B "DSML", "<" B "DS",
                           "</" B "DSML" B "tool_calls> without a start"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        parsed p = run_both(texts[i]);
        assert_false(p.done);
        assert_false(p.failed);
        assert_string_equal(p.text, texts[i]);
        assert_string_equal(p.raw, "");
        parsed_free(&p);
    }
}

static void test_failures_return_text(void **st) {
    (void)st;
    const char *bad[] = {
        /* garbage between tags */
        "t\n\n" OPEN "tool_calls>\nhello\n" CLOSE "tool_calls>",
        /* invoke without a name */
        OPEN "tool_calls>\n" OPEN "invoke>\n" CLOSE "invoke>\n" CLOSE "tool_calls>",
        /* no invoke at all */
        OPEN "tool_calls>\n" CLOSE "tool_calls>",
        /* a different tag name that merely starts like one */
        OPEN "tool_calls>\n" OPEN "invoker name=\"x\">\n",
        /* unterminated (generation ended) */
        "t\n\n" OPEN "tool_calls>\n" OPEN "invoke name=\"x\">\n" OPEN "parameter name=\"a\" string=\"true\">v",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        parsed p = run_both(bad[i]);
        assert_false(p.done);
        assert_true(p.failed);
        assert_int_equal(p.n_calls, 0);
        assert_string_equal(p.text, bad[i]);
        parsed_free(&p);
    }
}

static void test_holding_and_structural(void **st) {
    (void)st;
    dsml_parser d;
    dsml_init(&d);
    dsml_feed(&d, "Hello\n\n<" B "DS", strlen("Hello\n\n<" B "DS"));
    assert_string_equal(d.text.s, "Hello");   /* the rest might start a block */
    assert_false(dsml_in_block(&d));
    sb_reset(&d.text);
    dsml_feed(&d, "ML" B "tool_calls>\n" OPEN "inv", strlen("ML" B "tool_calls>\n" OPEN "inv"));
    assert_true(dsml_in_block(&d));
    assert_true(dsml_structural(&d));
    const char *more = "oke name=\"f\">\n" OPEN "parameter name=\"s\" string=\"true\">abc";
    dsml_feed(&d, more, strlen(more));
    assert_false(dsml_structural(&d));          /* free text of a string value */
    dsml_feed(&d, "</", 2);
    assert_true(dsml_structural(&d));           /* a closing tag may be starting */
    const char *j = B "DSML" B "parameter>\n" OPEN "parameter name=\"j\" string=\"false\">{\"k\": ";
    dsml_feed(&d, j, strlen(j));
    assert_true(dsml_structural(&d));           /* JSON structure */
    dsml_feed(&d, "\"te", 3);
    assert_false(dsml_structural(&d));          /* inside a JSON string */
    dsml_feed(&d, "xt\\\"\"}", 6);
    assert_true(dsml_structural(&d));
    const char *end = CLOSE "parameter>\n" CLOSE "invoke>\n" CLOSE "tool_calls>";
    dsml_feed(&d, end, strlen(end));
    assert_true(d.done);
    assert_false(dsml_structural(&d));
    assert_string_equal(d.calls[0].args, "{\"s\":\"abc\",\"j\":{\"k\":\"text\\\"\"}}");
    assert_string_equal(d.text.s ? d.text.s : "", "");
    dsml_free(&d);
}

/* ---- gen_text ----------------------------------------------------------------- */

typedef struct sink_log {
    strbuf reasoning, content;
    int bad_utf8;
} sink_log;

static int incomplete_utf8(const char *s, size_t n) {
    /* does s end inside a multi-byte sequence? */
    size_t i = n;
    int cont = 0;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) { i--; cont++; }
    if (i == 0) return cont > 0;
    unsigned char c = (unsigned char)s[i - 1];
    int need = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    return need > cont;
}

static void on_r(void *ud, const char *s, size_t n) {
    sink_log *l = ud;
    l->bad_utf8 += incomplete_utf8(s, n);
    sb_append(&l->reasoning, s, n);
}

static void on_c(void *ud, const char *s, size_t n) {
    sink_log *l = ud;
    l->bad_utf8 += incomplete_utf8(s, n);
    sb_append(&l->content, s, n);
}

typedef struct gen_out {
    char *reasoning, *content;
    bool stopped, think_closed;
    size_t n_calls;
    int stop_action_at;    /* byte index where STOP was first returned, -1 never */
} gen_out;

static gen_out gen_run(const char *s, bool thinking, bool tools, char **stops, size_t n_stops, size_t step) {
    sink_log l = {0};
    gen_sink sink = {&l, on_r, on_c};
    gen_text g;
    gen_text_init(&g, thinking, tools, stops, n_stops, &sink);
    gen_out o = {0};
    o.stop_action_at = -1;
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i += step) {
        size_t k = i + step <= n ? step : n - i;
        if (gen_text_feed(&g, s + i, k) == FP_TOK_STOP) {
            o.stop_action_at = (int)(i + k);
            break;
        }
    }
    gen_text_finish(&g);
    assert_int_equal(l.bad_utf8, 0);
    /* streamed pieces add up to the final texts */
    assert_string_equal(sb_str(&l.reasoning), sb_str(&g.reasoning));
    assert_string_equal(sb_str(&l.content), sb_str(&g.content));
    o.reasoning = strdup(sb_str(&g.reasoning));
    o.content = strdup(sb_str(&g.content));
    o.stopped = g.stopped;
    o.think_closed = g.think_closed;
    o.n_calls = gen_text_n_calls(&g);
    gen_text_free(&g);
    sb_free(&l.reasoning);
    sb_free(&l.content);
    return o;
}

static void gen_out_free(gen_out *o) {
    free(o->reasoning);
    free(o->content);
}

static void test_reasoning_split(void **st) {
    (void)st;
    for (size_t step = 1; step <= 5; step += 4) {
        gen_out o = gen_run("<think>Thinking about caf\xC3\xA9</think>Answer \xE4\xB8\x96", true, false, NULL, 0, step);
        assert_string_equal(o.reasoning, "Thinking about caf\xC3\xA9");
        assert_string_equal(o.content, "Answer \xE4\xB8\x96");
        assert_true(o.think_closed);
        gen_out_free(&o);
    }
    /* cut off while thinking: it stays reasoning */
    gen_out o = gen_run("still thinking </thi", true, false, NULL, 0, 1);
    assert_string_equal(o.reasoning, "still thinking </thi");
    assert_string_equal(o.content, "");
    assert_false(o.think_closed);
    gen_out_free(&o);
    /* thinking off: everything is content, even a stray </think> */
    o = gen_run("a</think>b", false, false, NULL, 0, 1);
    assert_string_equal(o.content, "a</think>b");
    assert_string_equal(o.reasoning, "");
    gen_out_free(&o);
}

static void test_stop_sequences(void **st) {
    (void)st;
    char *stops[] = {"STOP", "never"};
    gen_out o = gen_run("reasoning with STOP in it</think>one two STOP three four", true, false, stops, 2, 1);
    assert_string_equal(o.reasoning, "reasoning with STOP in it");   /* reasoning is never scanned */
    assert_string_equal(o.content, "one two ");
    assert_true(o.stopped);
    assert_int_equal(o.stop_action_at, (int)strlen("reasoning with STOP in it</think>one two STOP"));
    gen_out_free(&o);
    /* a partial match is held, then released */
    o = gen_run("STO STOP", false, false, stops, 2, 1);
    assert_string_equal(o.content, "STO ");
    gen_out_free(&o);
    o = gen_run("STO", false, false, stops, 2, 1);
    assert_string_equal(o.content, "STO");
    assert_false(o.stopped);
    gen_out_free(&o);
}

static void test_tools_in_answer(void **st) {
    (void)st;
    char *stops[] = {"city"};
    const char *s = "<think>plan " OPEN "tool_calls> in thought</think>Sure.\n\n" OPEN "tool_calls>\n"
                    OPEN "invoke name=\"f\">\n" OPEN "parameter name=\"city\" string=\"true\">x" CLOSE "parameter>\n"
                    CLOSE "invoke>\n" CLOSE "tool_calls>";
    gen_out o = gen_run(s, true, true, stops, 1, 1);
    assert_string_equal(o.reasoning, "plan " OPEN "tool_calls> in thought");
    assert_string_equal(o.content, "Sure.");
    assert_int_equal(o.n_calls, 1);
    assert_false(o.stopped);                      /* "city" inside the block is not a stop */
    assert_int_equal(o.stop_action_at, (int)strlen(s));   /* generation stops at the close tag */
    gen_out_free(&o);
    /* without declared tools the block is just text and yields no calls */
    o = gen_run(s, true, false, NULL, 0, 3);
    assert_int_equal(o.n_calls, 0);
    assert_true(strstr(o.content, OPEN "invoke") != NULL);
    gen_out_free(&o);
}

static void test_raw_mode(void **st) {
    (void)st;
    sink_log l = {0};
    gen_sink sink = {&l, on_r, on_c};
    gen_text g;
    gen_text_init(&g, true, false, NULL, 0, &sink);
    g.raw = true;
    const char *s = "r1</think>answer";
    for (size_t i = 0; s[i]; i++) gen_text_feed(&g, s + i, 1);
    gen_text_finish(&g);
    assert_string_equal(sb_str(&g.content), "r1</think>answer");
    assert_string_equal(sb_str(&l.content), "r1</think>answer");
    assert_int_equal(l.reasoning.n, 0);
    gen_text_free(&g);
    sb_free(&l.content);
}

/* ---- replay store ----------------------------------------------------------------- */

static void test_replay_store(void **st) {
    (void)st;
    tool_replay *r = tool_replay_open(3, 1 << 20);
    const char *turn1[] = {"a", "b"}, *turn2[] = {"c"};
    assert_int_equal(tool_replay_put(r, turn1, 2, "BLOCK1", 6), 0);
    assert_int_equal(tool_replay_put(r, turn2, 1, "BLOCK2", 6), 0);
    char *g = tool_replay_get(r, turn1, 2);
    assert_string_equal(g, "BLOCK1");
    free(g);
    const char *one[] = {"b"}, *mixed[] = {"a", "c"}, *unknown[] = {"a", "zz"};
    g = tool_replay_get(r, one, 1);
    assert_string_equal(g, "BLOCK1");
    free(g);
    assert_null(tool_replay_get(r, mixed, 2));     /* two different turns */
    assert_null(tool_replay_get(r, unknown, 2));   /* not all known */
    assert_int_equal(tool_replay_ids(r), 3);
    /* LRU: touch a and b, add d -> c (least recent) goes */
    g = tool_replay_get(r, turn1, 2);
    free(g);
    const char *turn3[] = {"d"};
    assert_int_equal(tool_replay_put(r, turn3, 1, "BLOCK3", 6), 0);
    assert_int_equal(tool_replay_ids(r), 3);
    assert_null(tool_replay_get(r, turn2, 1));
    g = tool_replay_get(r, turn3, 1);
    assert_string_equal(g, "BLOCK3");
    free(g);
    /* shared block counted once: 2 blocks of 6 + ids a,b,d */
    assert_int_equal(tool_replay_bytes(r), 6 + 6 + 3);
    /* re-using an id moves it to the new block */
    const char *again[] = {"a"};
    assert_int_equal(tool_replay_put(r, again, 1, "NEW", 3), 0);
    g = tool_replay_get(r, again, 1);
    assert_string_equal(g, "NEW");
    free(g);
    g = tool_replay_get(r, one, 1);
    assert_string_equal(g, "BLOCK1");
    free(g);
    tool_replay_close(r);

    /* byte budget */
    r = tool_replay_open(100, 20);
    assert_int_equal(tool_replay_put(r, turn2, 1, "0123456789012345678901234", 25), -1);
    assert_int_equal(tool_replay_ids(r), 0);
    assert_int_equal(tool_replay_put(r, turn1, 2, "0123456789", 10), 0);
    assert_int_equal(tool_replay_put(r, turn2, 1, "abcdefghij", 10), 0);   /* evicts turn1 */
    assert_null(tool_replay_get(r, turn1, 2));
    assert_true(tool_replay_bytes(r) <= 20);
    tool_replay_close(r);
}

static void test_resp_store(void **st) {
    (void)st;
    resp_store *s = resp_store_open(2, 1000);
    assert_int_equal(resp_store_put(s, "r1", "[1]", 3), 0);
    assert_int_equal(resp_store_put(s, "r2", "[2]", 3), 0);
    char *g = resp_store_get(s, "r1");   /* touch r1 */
    assert_string_equal(g, "[1]");
    free(g);
    assert_int_equal(resp_store_put(s, "r3", "[3]", 3), 0);   /* evicts r2 */
    assert_null(resp_store_get(s, "r2"));
    g = resp_store_get(s, "r3");
    assert_string_equal(g, "[3]");
    free(g);
    assert_int_equal(resp_store_count(s), 2);
    assert_int_equal(resp_store_put(s, "big", "x", 2000), -1);
    resp_store_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_block),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_short_variant_and_tail),
        cmocka_unit_test(test_plain_text_untouched),
        cmocka_unit_test(test_failures_return_text),
        cmocka_unit_test(test_holding_and_structural),
        cmocka_unit_test(test_reasoning_split),
        cmocka_unit_test(test_stop_sequences),
        cmocka_unit_test(test_tools_in_answer),
        cmocka_unit_test(test_raw_mode),
        cmocka_unit_test(test_replay_store),
        cmocka_unit_test(test_resp_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
