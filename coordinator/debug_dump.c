/* debug_dump.c — record per-layer HC states, output-head inputs, routing and
 * indexer selections during a forward pass and write them as the reference
 * vectors lay them out (see debug_dump.h). */
#include "debug_dump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct debug_dump {
    int n_layer, E, n_used, n_pos, idx_top_k;
    int n_rows, *row_of_pos;        /* pos -> row or -1 */
    int64_t *positions;
    int32_t *tokens;                /* [n_pos] */
    float *hc, *fin;                /* [rows][stages][4][E], [rows][2][E] */
    int trace;
    int32_t *experts;               /* [n_pos][n_layer][used] */
    float *weights;
    int n_idx_layers, idx_layer[64], idx_slot_of_layer[64];
    int32_t *indexer;               /* [n_pos][n_idx_layers][1+top_k] */
};

static int parse_positions(const char *s, int n_pos, int *row_of_pos, int64_t *positions) {
    int n = 0;
    while (s && *s) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s) return -1;
        if (*end == '-') {
            s = end + 1;
            b = strtol(s, &end, 10);
            if (end == s) return -1;
        }
        for (long p = a; p <= b; p++)
            if (p >= 0 && p < n_pos && row_of_pos[p] < 0) {
                row_of_pos[p] = n;
                positions[n++] = p;
            }
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

debug_dump *debug_dump_open(const model *m, const char *positions, int n_pos, int trace,
                            char *err, size_t errlen) {
    const model_hparams *hp = &m->hp;
    debug_dump *d = calloc(1, sizeof(*d));
    if (!d) goto oom;
    d->n_layer = hp->n_layer;
    d->E = hp->n_embd;
    d->n_used = hp->n_expert_used;
    d->n_pos = n_pos;
    d->idx_top_k = hp->idx_top_k;
    d->trace = trace;
    d->row_of_pos = malloc((size_t)n_pos * sizeof(int));
    d->positions = malloc((size_t)n_pos * sizeof(int64_t));
    d->tokens = calloc((size_t)n_pos, sizeof(int32_t));
    if (!d->row_of_pos || !d->positions || !d->tokens) goto oom;
    for (int i = 0; i < n_pos; i++) d->row_of_pos[i] = -1;
    if (positions) {
        d->n_rows = parse_positions(positions, n_pos, d->row_of_pos, d->positions);
        if (d->n_rows < 0) {
            snprintf(err, errlen, "bad position list '%s' (want e.g. 0-15,64-71)", positions);
            debug_dump_close(d);
            return NULL;
        }
        const size_t stages = 1 + 2 * (size_t)hp->n_layer;
        d->hc = calloc((size_t)d->n_rows * stages * FP_N_HC * d->E, sizeof(float));
        d->fin = calloc((size_t)d->n_rows * 2 * d->E, sizeof(float));
        if (!d->hc || !d->fin) goto oom;
    }
    for (int l = 0; l < hp->n_layer; l++) {
        d->idx_slot_of_layer[l] = -1;
        if (hp->compress_ratio[l] == 4) {
            d->idx_slot_of_layer[l] = d->n_idx_layers;
            d->idx_layer[d->n_idx_layers++] = l;
        }
    }
    if (trace) {
        d->experts = calloc((size_t)n_pos * d->n_layer * d->n_used, sizeof(int32_t));
        d->weights = calloc((size_t)n_pos * d->n_layer * d->n_used, sizeof(float));
        d->indexer = malloc((size_t)n_pos * d->n_idx_layers * (1 + d->idx_top_k) * sizeof(int32_t));
        if (!d->experts || !d->weights || (!d->indexer && d->n_idx_layers)) goto oom;
        for (size_t i = 0; i < (size_t)n_pos * d->n_idx_layers * (1 + d->idx_top_k); i++) d->indexer[i] = -1;
    }
    return d;
oom:
    snprintf(err, errlen, "out of memory for the debug dump");
    debug_dump_close(d);
    return NULL;
}

void debug_dump_close(debug_dump *d) {
    if (!d) return;
    free(d->row_of_pos);
    free(d->positions);
    free(d->tokens);
    free(d->hc);
    free(d->fin);
    free(d->experts);
    free(d->weights);
    free(d->indexer);
    free(d);
}

void debug_dump_set_token(debug_dump *d, int64_t pos, int32_t token) {
    if (pos >= 0 && pos < d->n_pos) d->tokens[pos] = token;
}

static void on_hc(void *ud, int64_t pos, int stage, const float *H) {
    debug_dump *d = ud;
    if (!d->hc || pos < 0 || pos >= d->n_pos || d->row_of_pos[pos] < 0) return;
    const size_t stages = 1 + 2 * (size_t)d->n_layer, sz = (size_t)FP_N_HC * d->E;
    memcpy(d->hc + ((size_t)d->row_of_pos[pos] * stages + stage) * sz, H, sz * sizeof(float));
}

static void on_final(void *ud, int64_t pos, const float *collapsed, const float *normed) {
    debug_dump *d = ud;
    if (!d->fin || pos < 0 || pos >= d->n_pos || d->row_of_pos[pos] < 0) return;
    float *dst = d->fin + (size_t)d->row_of_pos[pos] * 2 * d->E;
    memcpy(dst, collapsed, (size_t)d->E * sizeof(float));
    memcpy(dst + d->E, normed, (size_t)d->E * sizeof(float));
}

static void on_route(void *ud, int64_t pos, int layer, const int32_t *experts, const float *weights, int n) {
    debug_dump *d = ud;
    if (!d->trace || pos < 0 || pos >= d->n_pos || n != d->n_used) return;
    const size_t off = ((size_t)pos * d->n_layer + layer) * d->n_used;
    memcpy(d->experts + off, experts, (size_t)n * sizeof(int32_t));
    memcpy(d->weights + off, weights, (size_t)n * sizeof(float));
}

static void on_indexer(void *ud, int64_t pos, int layer, int n_comp, const int32_t *rows, int n_rows) {
    debug_dump *d = ud;
    if (!d->trace || pos < 0 || pos >= d->n_pos || d->idx_slot_of_layer[layer] < 0) return;
    int32_t *dst = d->indexer + ((size_t)pos * d->n_idx_layers + d->idx_slot_of_layer[layer]) * (1 + d->idx_top_k);
    dst[0] = n_comp;
    for (int i = 0; i < n_rows && i < d->idx_top_k; i++) dst[1 + i] = rows[i];
}

fwd_observer debug_dump_observer(debug_dump *d) {
    fwd_observer o = {.ud = d, .on_hc = on_hc, .on_final = on_final, .on_route = on_route, .on_indexer = on_indexer};
    return o;
}

static int write_file(const char *path, const void *data, size_t n, char *err, size_t errlen) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        snprintf(err, errlen, "cannot write %s", path);
        return -1;
    }
    return 0;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int debug_dump_write(debug_dump *d, const char *prefix, char *err, size_t errlen) {
    char path[1200], hcp[1200], finp[1200];
    if (d->hc) {
        const size_t stages = 1 + 2 * (size_t)d->n_layer;
        snprintf(hcp, sizeof hcp, "%s.layers.hc.f32", prefix);
        snprintf(finp, sizeof finp, "%s.layers.final.f32", prefix);
        if (write_file(hcp, d->hc, (size_t)d->n_rows * stages * FP_N_HC * d->E * sizeof(float), err, errlen) ||
            write_file(finp, d->fin, (size_t)d->n_rows * 2 * d->E * sizeof(float), err, errlen))
            return -1;
        snprintf(path, sizeof path, "%s.layers.json", prefix);
        FILE *f = fopen(path, "w");
        if (!f) return snprintf(err, errlen, "cannot write %s", path), -1;
        fprintf(f, "{\n \"format\": \"ds4-oracle per-layer dump v1\",\n \"dtype\": \"float32\",\n"
                   " \"endianness\": \"little\",\n \"producer\": \"flashpool\",\n \"n_rows\": %d,\n"
                   " \"n_layer\": %d,\n \"n_hc\": %d,\n \"n_embd\": %d,\n \"n_stage\": %zu,\n \"positions\": [",
                d->n_rows, d->n_layer, FP_N_HC, d->E, stages);
        for (int r = 0; r < d->n_rows; r++) fprintf(f, "%s%lld", r ? ", " : "", (long long)d->positions[r]);
        fprintf(f, "],\n \"tokens\": [");
        for (int r = 0; r < d->n_rows; r++) fprintf(f, "%s%d", r ? ", " : "", d->tokens[d->positions[r]]);
        fprintf(f, "],\n \"hc_file\": \"%s\",\n \"hc_shape\": [%d, %zu, %d, %d],\n"
                   " \"hc_dims\": [\"row\", \"stage\", \"hc_stream\", \"embd\"],\n \"stages\": [\"embed\"",
                base_name(hcp), d->n_rows, stages, FP_N_HC, d->E);
        for (int l = 0; l < d->n_layer; l++) fprintf(f, ", \"L%d.attn\", \"L%d.out\"", l, l);
        fprintf(f, "],\n \"final_file\": \"%s\",\n \"final_shape\": [%d, 2, %d],\n"
                   " \"final_dims\": [\"row\", \"kind\", \"embd\"],\n"
                   " \"final_kinds\": [\"hc_collapsed\", \"output_normed\"]\n}\n",
                base_name(finp), d->n_rows, d->E);
        if (fclose(f) != 0) return snprintf(err, errlen, "cannot write %s", path), -1;
    }
    if (d->trace) {
        char ep[1200], wp[1200], ip[1200];
        snprintf(ep, sizeof ep, "%s.trace.experts.i32", prefix);
        snprintf(wp, sizeof wp, "%s.trace.weights.f32", prefix);
        snprintf(ip, sizeof ip, "%s.trace.indexer.i32", prefix);
        const size_t ne = (size_t)d->n_pos * d->n_layer * d->n_used;
        if (write_file(ep, d->experts, ne * sizeof(int32_t), err, errlen) ||
            write_file(wp, d->weights, ne * sizeof(float), err, errlen) ||
            write_file(ip, d->indexer, (size_t)d->n_pos * d->n_idx_layers * (1 + d->idx_top_k) * sizeof(int32_t), err, errlen))
            return -1;
        snprintf(path, sizeof path, "%s.trace.json", prefix);
        FILE *f = fopen(path, "w");
        if (!f) return snprintf(err, errlen, "cannot write %s", path), -1;
        fprintf(f, "{\n \"format\": \"ds4-oracle routing trace v1\",\n \"endianness\": \"little\",\n"
                   " \"producer\": \"flashpool\",\n \"n_pos\": %d,\n \"n_layer\": %d,\n \"n_expert_used\": %d,\n"
                   " \"indexer_top_k\": %d,\n \"experts_file\": \"%s\",\n \"experts_dtype\": \"int32\",\n"
                   " \"experts_shape\": [%d, %d, %d],\n \"weights_file\": \"%s\",\n \"weights_dtype\": \"float32\",\n"
                   " \"weights_shape\": [%d, %d, %d],\n \"indexer_file\": \"%s\",\n \"indexer_dtype\": \"int32\",\n"
                   " \"indexer_shape\": [%d, %d, %d],\n \"indexer_layers\": [",
                d->n_pos, d->n_layer, d->n_used, d->idx_top_k, base_name(ep), d->n_pos, d->n_layer, d->n_used,
                base_name(wp), d->n_pos, d->n_layer, d->n_used, base_name(ip), d->n_pos, d->n_idx_layers,
                1 + d->idx_top_k);
        for (int i = 0; i < d->n_idx_layers; i++) fprintf(f, "%s%d", i ? ", " : "", d->idx_layer[i]);
        fprintf(f, "]\n}\n");
        if (fclose(f) != 0) return snprintf(err, errlen, "cannot write %s", path), -1;
    }
    return 0;
}
