/* routing_trace.c — the routing-trace JSONL writer (a fwd_observer) and
 * reader (see routing_trace.h for the format). */
#include "errmsg.h"
#include "routing_trace.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>

struct routing_trace_writer {
    FILE *f;
    int n_expert;
    int failed;             /* sticky: a write failed somewhere */
    char path[1024];
};

routing_trace_writer *routing_trace_create(const char *path, const model *m, char *err, size_t errlen) {
    routing_trace_writer *w = calloc(1, sizeof(*w));
    if (!w) return fp_fail(err, errlen, "out of memory"), NULL;
    w->f = fopen(path, "w");
    if (!w->f) {
        fp_fail(err, errlen, "cannot create routing trace %s: %s", path, strerror(errno));
        free(w);
        return NULL;
    }
    snprintf(w->path, sizeof w->path, "%s", path);
    w->n_expert = m->hp.n_expert;
    cJSON *mp = cJSON_CreateString(m->path);
    char *mtxt = mp ? cJSON_PrintUnformatted(mp) : NULL;
    if (fprintf(w->f, "{\"format\":\"flashpool-routing-trace\",\"version\":1,\"n_layer\":%d,\"n_expert\":%d,"
                      "\"n_used\":%d,\"model\":%s}\n",
                m->hp.n_layer, m->hp.n_expert, m->hp.n_expert_used, mtxt ? mtxt : "\"\"") < 0)
        w->failed = 1;
    free(mtxt);
    cJSON_Delete(mp);
    return w;
}

static void on_route(void *ud, int64_t pos, int layer, const int32_t *experts, const float *weights, int n) {
    routing_trace_writer *w = ud;
    if (w->failed) return;
    char line[1024];
    int k = snprintf(line, sizeof line, "{\"pos\":%lld,\"layer\":%d,\"experts\":[", (long long)pos, layer);
    for (int i = 0; i < n && k < (int)sizeof line; i++)
        k += snprintf(line + k, sizeof line - (size_t)k, "%s%d", i ? "," : "", experts[i]);
    if (k < (int)sizeof line) k += snprintf(line + k, sizeof line - (size_t)k, "],\"weights\":[");
    for (int i = 0; i < n && k < (int)sizeof line; i++)
        k += snprintf(line + k, sizeof line - (size_t)k, "%s%.9g", i ? "," : "", (double)weights[i]);
    if (k < (int)sizeof line) k += snprintf(line + k, sizeof line - (size_t)k, "]}\n");
    if (k >= (int)sizeof line || fputs(line, w->f) < 0) w->failed = 1;
}

fwd_observer routing_trace_observer(routing_trace_writer *w) {
    fwd_observer o = {.ud = w, .on_route = on_route};
    return o;
}

int routing_trace_close(routing_trace_writer *w, char *err, size_t errlen) {
    if (!w) return 0;
    int rc = 0;
    if (fclose(w->f) != 0 || w->failed) rc = fp_fail(err, errlen, "writing routing trace %s failed (disk full?)", w->path);
    free(w);
    return rc;
}

/* ---- reader ---------------------------------------------------------------- */

static int get_int(const cJSON *o, const char *k, int64_t lo, int64_t hi, int64_t *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(j) || j->valuedouble != (double)(int64_t)j->valuedouble || j->valuedouble < (double)lo ||
        j->valuedouble > (double)hi)
        return -1;
    *out = (int64_t)j->valuedouble;
    return 0;
}

static int parse_header(routing_trace *t, const char *line, char *err, size_t errlen) {
    cJSON *h = cJSON_Parse(line);
    int rc = -1;
    int64_t nl, ne, nu;
    const cJSON *fmt = h ? cJSON_GetObjectItemCaseSensitive(h, "format") : NULL;
    if (!h || !cJSON_IsObject(h)) fp_fail(err, errlen, "line 1: not a JSON object (is this a routing trace?)");
    else if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "flashpool-routing-trace") != 0)
        fp_fail(err, errlen, "line 1: \"format\" is not \"flashpool-routing-trace\"");
    else if (get_int(h, "version", 1, 1, &nl)) fp_fail(err, errlen, "line 1: unsupported \"version\" (expected 1)");
    else if (get_int(h, "n_layer", 1, 4096, &nl) || get_int(h, "n_expert", 1, 65536, &ne) ||
             get_int(h, "n_used", 1, ROUTING_TRACE_MAX_USED, &nu) || nu > ne)
        fp_fail(err, errlen, "line 1: n_layer, n_expert, n_used missing or out of range");
    else {
        t->n_layer = (int)nl;
        t->n_expert = (int)ne;
        t->n_used = (int)nu;
        rc = 0;
    }
    cJSON_Delete(h);
    return rc;
}

static int parse_record(const routing_trace *t, const char *line, routing_record *r, char *err, size_t errlen) {
    cJSON *o = cJSON_Parse(line);
    int rc = -1;
    int64_t pos, layer;
    const cJSON *ex = o ? cJSON_GetObjectItemCaseSensitive(o, "experts") : NULL;
    const cJSON *wt = o ? cJSON_GetObjectItemCaseSensitive(o, "weights") : NULL;
    if (!o || !cJSON_IsObject(o)) fp_fail(err, errlen, "not a JSON object");
    else if (get_int(o, "pos", 0, INT64_MAX / 2, &pos)) fp_fail(err, errlen, "\"pos\" missing or not a position");
    else if (get_int(o, "layer", 0, t->n_layer - 1, &layer)) fp_fail(err, errlen, "\"layer\" missing or not in 0..%d", t->n_layer - 1);
    else if (!cJSON_IsArray(ex) || !cJSON_IsArray(wt) || cJSON_GetArraySize(ex) != cJSON_GetArraySize(wt) ||
             cJSON_GetArraySize(ex) < 1 || cJSON_GetArraySize(ex) > ROUTING_TRACE_MAX_USED)
        fp_fail(err, errlen, "\"experts\" and \"weights\" must be arrays of the same length 1..%d", ROUTING_TRACE_MAX_USED);
    else {
        memset(r, 0, sizeof(*r));
        r->pos = pos;
        r->layer = (int32_t)layer;
        r->n = cJSON_GetArraySize(ex);
        rc = 0;
        for (int i = 0; i < r->n && rc == 0; i++) {
            const cJSON *e = cJSON_GetArrayItem(ex, i), *w = cJSON_GetArrayItem(wt, i);
            if (!cJSON_IsNumber(e) || e->valuedouble != (double)(int)e->valuedouble || e->valuedouble < 0 ||
                e->valuedouble >= t->n_expert)
                rc = fp_fail(err, errlen, "experts[%d] is not an expert id 0..%d", i, t->n_expert - 1);
            else if (!cJSON_IsNumber(w))
                rc = fp_fail(err, errlen, "weights[%d] is not a number", i);
            else {
                r->experts[i] = (int32_t)e->valuedouble;
                r->weights[i] = (float)w->valuedouble;
            }
        }
    }
    cJSON_Delete(o);
    return rc;
}

routing_trace *routing_trace_read(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) return fp_fail(err, errlen, "cannot open routing trace %s: %s", path, strerror(errno)), NULL;
    routing_trace *t = calloc(1, sizeof(*t));
    size_t cap = 0, lineno = 0;
    char line[4096], sub[512];
    if (!t) {
        fp_fail(err, errlen, "out of memory");
        goto bad;
    }
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            fp_fail(err, errlen, "%s:%zu: line longer than %zu bytes", path, lineno, sizeof line - 1);
            goto bad;
        }
        if (lineno == 1) {
            if (parse_header(t, line, sub, sizeof sub)) {
                fp_fail(err, errlen, "%s: %s", path, sub);
                goto bad;
            }
            continue;
        }
        if (line[0] == '\n') continue;
        if (t->n_rec == cap) {
            cap = cap ? 2 * cap : 1024;
            routing_record *nr = realloc(t->rec, cap * sizeof(*nr));
            if (!nr) {
                fp_fail(err, errlen, "out of memory at line %zu", lineno);
                goto bad;
            }
            t->rec = nr;
        }
        if (parse_record(t, line, &t->rec[t->n_rec], sub, sizeof sub)) {
            fp_fail(err, errlen, "%s:%zu: %s", path, lineno, sub);
            goto bad;
        }
        t->n_rec++;
    }
    if (lineno == 0) {
        fp_fail(err, errlen, "%s: empty file (no header line)", path);
        goto bad;
    }
    fclose(f);
    return t;
bad:
    fclose(f);
    routing_trace_free(t);
    return NULL;
}

void routing_trace_free(routing_trace *t) {
    if (!t) return;
    free(t->rec);
    free(t);
}

int routing_trace_to_cache_trace(const routing_trace *t, int per_token, cache_trace *out) {
    memset(out, 0, sizeof(*out));
    size_t total = 0;
    for (size_t i = 0; i < t->n_rec; i++) total += (size_t)t->rec[i].n;
    out->keys = malloc((total ? total : 1) * sizeof(uint32_t));
    out->group_end = malloc((t->n_rec ? t->n_rec : 1) * sizeof(size_t));
    unsigned char *in_group = calloc((size_t)t->n_expert, 1);
    if (!out->keys || !out->group_end || !in_group) {
        free(in_group);
        cache_trace_free(out);
        return -1;
    }
    size_t gstart = 0;
    for (size_t i = 0; i < t->n_rec; i++) {
        const routing_record *r = &t->rec[i];
        const int new_group = i == 0 || per_token || r->layer != t->rec[i - 1].layer;
        if (new_group && i > 0) {
            for (size_t k = gstart; k < out->n_keys; k++) in_group[out->keys[k] % (uint32_t)t->n_expert] = 0;
            out->group_end[out->n_groups++] = out->n_keys;
            gstart = out->n_keys;
        }
        for (int j = 0; j < r->n; j++)
            if (!in_group[r->experts[j]]) {
                in_group[r->experts[j]] = 1;
                out->keys[out->n_keys++] = (uint32_t)r->layer * (uint32_t)t->n_expert + (uint32_t)r->experts[j];
            }
    }
    if (t->n_rec) out->group_end[out->n_groups++] = out->n_keys;
    free(in_group);
    return 0;
}

void cache_trace_free(cache_trace *ct) {
    free(ct->keys);
    free(ct->group_end);
    memset(ct, 0, sizeof(*ct));
}
