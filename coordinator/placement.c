/* placement.c — the (layer, expert) → nodes map: built-in strategies,
 * validation, RAM-budget checks and the JSON file format (see placement.h). */
#include "errmsg.h"
#include "placement.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cJSON.h>

placement *placement_new(int n_layer, int n_expert, int n_nodes) {
    if (n_layer < 1 || n_expert < 1 || n_nodes < 0 || n_nodes > PLACEMENT_MAX_NODES) return NULL;
    placement *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->n_layer = n_layer;
    p->n_expert = n_expert;
    p->n_nodes = n_nodes;
    const size_t n = (size_t)n_layer * n_expert;
    p->n_rep = calloc(n, 1);
    p->nodes = calloc(n * PLACEMENT_MAX_REPLICAS, sizeof(uint16_t));
    if (!p->n_rep || !p->nodes) {
        placement_free(p);
        return NULL;
    }
    return p;
}

void placement_free(placement *p) {
    if (!p) return;
    free(p->n_rep);
    free(p->nodes);
    free(p);
}

int placement_add(placement *p, int layer, int expert, int node) {
    if (layer < 0 || layer >= p->n_layer || expert < 0 || expert >= p->n_expert || node < 0 || node >= p->n_nodes)
        return -1;
    const size_t i = (size_t)layer * p->n_expert + expert;
    uint16_t *list = p->nodes + i * PLACEMENT_MAX_REPLICAS;
    if (p->n_rep[i] >= PLACEMENT_MAX_REPLICAS) return -1;
    for (int r = 0; r < p->n_rep[i]; r++)
        if (list[r] == node) return -1;
    list[p->n_rep[i]++] = (uint16_t)node;
    return 0;
}

static int check_builtin_args(int n_layer, int n_expert, int n_nodes, int replicas, char *err, size_t errlen) {
    if (n_nodes < 1) return fp_fail(err, errlen, "a placement strategy needs at least one node (got %d)", n_nodes);
    if (n_nodes > PLACEMENT_MAX_NODES) return fp_fail(err, errlen, "at most %d nodes (got %d)", PLACEMENT_MAX_NODES, n_nodes);
    if (replicas < 1 || replicas > n_nodes || replicas > PLACEMENT_MAX_REPLICAS)
        return fp_fail(err, errlen, "replicas must be 1..%d with %d nodes (got %d)",
                    n_nodes < PLACEMENT_MAX_REPLICAS ? n_nodes : PLACEMENT_MAX_REPLICAS, n_nodes, replicas);
    if (n_layer < 1 || n_expert < 1) return fp_fail(err, errlen, "model has no routed experts");
    return 0;
}

placement *placement_round_robin(int n_layer, int n_expert, int n_nodes, int replicas, char *err, size_t errlen) {
    if (check_builtin_args(n_layer, n_expert, n_nodes, replicas, err, errlen)) return NULL;
    placement *p = placement_new(n_layer, n_expert, n_nodes);
    if (!p) return fp_fail(err, errlen, "out of memory"), NULL;
    for (int l = 0; l < n_layer; l++)
        for (int e = 0; e < n_expert; e++) {
            const int64_t g = (int64_t)l * n_expert + e;
            for (int r = 0; r < replicas; r++) placement_add(p, l, e, (int)((g + r) % n_nodes));
        }
    return p;
}

placement *placement_contiguous(int n_layer, int n_expert, int n_nodes, int replicas, char *err, size_t errlen) {
    if (check_builtin_args(n_layer, n_expert, n_nodes, replicas, err, errlen)) return NULL;
    placement *p = placement_new(n_layer, n_expert, n_nodes);
    if (!p) return fp_fail(err, errlen, "out of memory"), NULL;
    const int64_t total = (int64_t)n_layer * n_expert;
    for (int l = 0; l < n_layer; l++)
        for (int e = 0; e < n_expert; e++) {
            const int64_t g = (int64_t)l * n_expert + e;
            const int home = (int)(g * n_nodes / total);
            for (int r = 0; r < replicas; r++) placement_add(p, l, e, (home + r) % n_nodes);
        }
    return p;
}

int placement_validate(const placement *p, char *err, size_t errlen) {
    for (int l = 0; l < p->n_layer; l++)
        for (int e = 0; e < p->n_expert; e++) {
            const int n = placement_count(p, l, e);
            const uint16_t *list = placement_nodes(p, l, e);
            if (n > PLACEMENT_MAX_REPLICAS)
                return fp_fail(err, errlen, "layer %d expert %d: %d replicas, at most %d", l, e, n, PLACEMENT_MAX_REPLICAS);
            for (int r = 0; r < n; r++) {
                if (list[r] >= p->n_nodes)
                    return fp_fail(err, errlen, "layer %d expert %d: node %d does not exist (nodes 0..%d)", l, e,
                                list[r], p->n_nodes - 1);
                for (int q = 0; q < r; q++)
                    if (list[q] == list[r])
                        return fp_fail(err, errlen, "layer %d expert %d: node %d listed twice", l, e, list[r]);
            }
        }
    return 0;
}

void placement_node_bytes(const placement *p, const size_t *layer_expert_bytes, uint64_t *out) {
    memset(out, 0, (size_t)p->n_nodes * sizeof(*out));
    for (int l = 0; l < p->n_layer; l++)
        for (int e = 0; e < p->n_expert; e++) {
            const uint16_t *list = placement_nodes(p, l, e);
            for (int r = 0; r < placement_count(p, l, e); r++) out[list[r]] += layer_expert_bytes[l];
        }
}

int placement_check_budgets(const placement *p, const size_t *layer_expert_bytes, const uint64_t *node_budget,
                            char *const *node_names, char *err, size_t errlen) {
    uint64_t *need = calloc((size_t)(p->n_nodes ? p->n_nodes : 1), sizeof(*need));
    if (!need) return fp_fail(err, errlen, "out of memory");
    placement_node_bytes(p, layer_expert_bytes, need);
    int rc = 0;
    for (int n = 0; n < p->n_nodes && rc == 0; n++)
        if (node_budget[n] && need[n] > node_budget[n])
            rc = fp_fail(err, errlen,
                      "node %s is assigned %.1f MiB of experts but its RAM budget is %.1f MiB: "
                      "raise its ram_mb in the cluster file or move experts in the placement",
                      node_names ? node_names[n] : "?", need[n] / 1048576.0, node_budget[n] / 1048576.0);
    free(need);
    return rc;
}

/* ---- JSON ------------------------------------------------------------------ */

static int is_int(const cJSON *j) { return cJSON_IsNumber(j) && j->valuedouble == (double)(int64_t)j->valuedouble; }

placement *placement_parse(const char *json, int n_layer, int n_expert, char *const *cluster_names, int n_cluster,
                           char *err, size_t errlen) {
    cJSON *root = cJSON_Parse(json);
    placement *p = NULL;
    int *map = NULL;
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        fp_fail(err, errlen, "not valid JSON near: %.40s", at ? at : "?");
        goto bad;
    }
    if (!cJSON_IsObject(root)) {
        fp_fail(err, errlen, "the top level must be an object");
        goto bad;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "flashpool-placement") != 0) {
        fp_fail(err, errlen, "\"format\" must be \"flashpool-placement\"");
        goto bad;
    }
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!is_int(ver) || ver->valuedouble != 1) {
        fp_fail(err, errlen, "\"version\" must be 1");
        goto bad;
    }
    const cJSON *jl = cJSON_GetObjectItemCaseSensitive(root, "n_layer");
    const cJSON *je = cJSON_GetObjectItemCaseSensitive(root, "n_expert");
    if (!is_int(jl) || !is_int(je)) {
        fp_fail(err, errlen, "\"n_layer\" and \"n_expert\" must be integers");
        goto bad;
    }
    if ((int)jl->valuedouble != n_layer || (int)je->valuedouble != n_expert) {
        fp_fail(err, errlen, "placement is for %d layers x %d experts but the model has %d x %d",
             (int)jl->valuedouble, (int)je->valuedouble, n_layer, n_expert);
        goto bad;
    }
    /* File node names -> cluster indices. */
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    if (!cJSON_IsArray(jn)) {
        fp_fail(err, errlen, "\"nodes\" must be an array of node names");
        goto bad;
    }
    const int nfile = cJSON_GetArraySize(jn);
    map = calloc((size_t)(nfile ? nfile : 1), sizeof(int));
    if (!map) {
        fp_fail(err, errlen, "out of memory");
        goto bad;
    }
    for (int i = 0; i < nfile; i++) {
        const cJSON *s = cJSON_GetArrayItem(jn, i);
        if (!cJSON_IsString(s)) {
            fp_fail(err, errlen, "nodes[%d] must be a string (a node name from the cluster)", i);
            goto bad;
        }
        map[i] = -1;
        for (int c = 0; c < n_cluster; c++)
            if (strcmp(cluster_names[c], s->valuestring) == 0) map[i] = c;
        if (map[i] < 0) {
            char known[512] = "";
            for (int c = 0; c < n_cluster; c++) {
                const size_t k = strlen(known);
                snprintf(known + k, sizeof known - k, "%s%s", c ? ", " : "", cluster_names[c]);
            }
            fp_fail(err, errlen, "nodes[%d] \"%s\" is not a node of the cluster (known: %s)", i, s->valuestring,
                 n_cluster ? known : "none; give --node or --cluster");
            goto bad;
        }
        for (int q = 0; q < i; q++)
            if (map[q] == map[i]) {
                fp_fail(err, errlen, "nodes[%d] \"%s\" is listed twice", i, s->valuestring);
                goto bad;
            }
    }
    p = placement_new(n_layer, n_expert, n_cluster);
    if (!p) {
        fp_fail(err, errlen, "out of memory (or more than %d nodes)", PLACEMENT_MAX_NODES);
        goto bad;
    }
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) != n_layer) {
        fp_fail(err, errlen, "\"layers\" must be an array of %d layers", n_layer);
        goto bad;
    }
    for (int l = 0; l < n_layer; l++) {
        const cJSON *jlay = cJSON_GetArrayItem(layers, l);
        if (!cJSON_IsArray(jlay) || cJSON_GetArraySize(jlay) != n_expert) {
            fp_fail(err, errlen, "layers[%d] must be an array of %d experts (each a list of nodes)", l, n_expert);
            goto bad;
        }
        for (int e = 0; e < n_expert; e++) {
            const cJSON *jex = cJSON_GetArrayItem(jlay, e);
            if (!cJSON_IsArray(jex)) {
                fp_fail(err, errlen, "layers[%d][%d] must be a list of nodes ([] = coordinator only)", l, e);
                goto bad;
            }
            const int nr = cJSON_GetArraySize(jex);
            if (nr > PLACEMENT_MAX_REPLICAS) {
                fp_fail(err, errlen, "layers[%d][%d]: %d replicas, at most %d", l, e, nr, PLACEMENT_MAX_REPLICAS);
                goto bad;
            }
            for (int r = 0; r < nr; r++) {
                const cJSON *ref = cJSON_GetArrayItem(jex, r);
                int fi = -1;
                if (is_int(ref)) {
                    fi = (int)ref->valuedouble;
                    if (fi < 0 || fi >= nfile) {
                        fp_fail(err, errlen, "layers[%d][%d][%d]: node index %d out of range (\"nodes\" has %d)", l, e,
                             r, fi, nfile);
                        goto bad;
                    }
                } else if (cJSON_IsString(ref)) {
                    for (int i = 0; i < nfile; i++)
                        if (strcmp(cJSON_GetArrayItem(jn, i)->valuestring, ref->valuestring) == 0) fi = i;
                    if (fi < 0) {
                        fp_fail(err, errlen, "layers[%d][%d][%d]: \"%s\" is not in \"nodes\"", l, e, r, ref->valuestring);
                        goto bad;
                    }
                } else {
                    fp_fail(err, errlen, "layers[%d][%d][%d] must be a node index or name", l, e, r);
                    goto bad;
                }
                if (placement_add(p, l, e, map[fi])) {
                    fp_fail(err, errlen, "layers[%d][%d]: node \"%s\" listed twice", l, e,
                         cJSON_GetArrayItem(jn, fi)->valuestring);
                    goto bad;
                }
            }
        }
    }
    free(map);
    cJSON_Delete(root);
    return p;
bad:
    free(map);
    placement_free(p);
    cJSON_Delete(root);
    return NULL;
}

placement *placement_load(const char *path, int n_layer, int n_expert, char *const *cluster_names, int n_cluster,
                          char *err, size_t errlen) {
    char *buf = fp_read_text_file(path, (size_t)64 << 20, "placement file", NULL, err, errlen);
    if (!buf) return NULL;
    char sub[768];
    placement *p = placement_parse(buf, n_layer, n_expert, cluster_names, n_cluster, sub, sizeof sub);
    free(buf);
    if (!p) fp_fail(err, errlen, "%s: %s", path, sub);
    return p;
}

int placement_save(const placement *p, const char *path, char *const *node_names, char *err, size_t errlen) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return fp_fail(err, errlen, "path too long");
    FILE *f = fopen(tmp, "w");
    if (!f) return fp_fail(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    /* Written by hand rather than cJSON_Print so that one layer is one line:
     * a 43 x 256 file stays readable and diffable. Names are escaped through cJSON. */
    fprintf(f, "{\n  \"format\": \"flashpool-placement\",\n  \"version\": 1,\n  \"n_layer\": %d,\n  \"n_expert\": %d,\n"
               "  \"nodes\": [", p->n_layer, p->n_expert);
    for (int n = 0; n < p->n_nodes; n++) {
        cJSON *s = cJSON_CreateString(node_names[n]);
        char *txt = s ? cJSON_PrintUnformatted(s) : NULL;
        fprintf(f, "%s%s", n ? ", " : "", txt ? txt : "\"?\"");
        free(txt);
        cJSON_Delete(s);
    }
    fprintf(f, "],\n  \"layers\": [\n");
    for (int l = 0; l < p->n_layer; l++) {
        fprintf(f, "    [");
        for (int e = 0; e < p->n_expert; e++) {
            fprintf(f, "%s[", e ? ", " : "");
            const uint16_t *list = placement_nodes(p, l, e);
            for (int r = 0; r < placement_count(p, l, e); r++) fprintf(f, "%s%d", r ? ", " : "", list[r]);
            fprintf(f, "]");
        }
        fprintf(f, "]%s\n", l + 1 < p->n_layer ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        unlink(tmp);
        return fp_fail(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return fp_fail(err, errlen, "cannot write %s: %s", path, strerror(errno));
    }
    return 0;
}
