/* cluster.c — the node list: --node flags and the cluster JSON file. */
#include "errmsg.h"
#include "cluster.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>

cluster *cluster_new(void) { return calloc(1, sizeof(cluster)); }

void cluster_free(cluster *c) {
    if (!c) return;
    free(c->nodes);
    free(c->names);
    free(c);
}

int cluster_add(cluster *c, const char *name, const char *endpoint, uint64_t ram_bytes, const char *server_key,
                char *err, size_t errlen) {
    if (!endpoint || !*endpoint) return fp_fail(err, errlen, "a node needs an endpoint such as tcp://HOST:PORT");
    if (!name) name = endpoint;
    if (!*name) return fp_fail(err, errlen, "node %s: empty name", endpoint);
    if (strlen(name) >= CLUSTER_NAME_MAX) return fp_fail(err, errlen, "node name \"%s\" is longer than %d bytes", name, CLUSTER_NAME_MAX - 1);
    if (strlen(endpoint) >= CLUSTER_ENDPOINT_MAX) return fp_fail(err, errlen, "node endpoint \"%.40s...\" is too long", endpoint);
    if (!strstr(endpoint, "://"))
        return fp_fail(err, errlen, "node endpoint \"%s\" has no transport: write tcp://HOST:PORT (or ipc://PATH)", endpoint);
    if (server_key && *server_key && strlen(server_key) != CLUSTER_KEY_MAX - 1)
        return fp_fail(err, errlen, "node %s: server_key must be a %d-character Z85 public key", name, CLUSTER_KEY_MAX - 1);
    for (int i = 0; i < c->n_nodes; i++) {
        if (strcmp(c->nodes[i].name, name) == 0) return fp_fail(err, errlen, "node name \"%s\" is used twice", name);
        if (strcmp(c->nodes[i].endpoint, endpoint) == 0) return fp_fail(err, errlen, "node endpoint %s is listed twice", endpoint);
    }
    cluster_node *nn = realloc(c->nodes, (size_t)(c->n_nodes + 1) * sizeof(*nn));
    if (!nn) return fp_fail(err, errlen, "out of memory");
    c->nodes = nn;
    char **names = realloc(c->names, (size_t)(c->n_nodes + 1) * sizeof(*names));
    if (!names) return fp_fail(err, errlen, "out of memory");
    c->names = names;
    cluster_node *n = &c->nodes[c->n_nodes];
    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof n->name, "%s", name);
    snprintf(n->endpoint, sizeof n->endpoint, "%s", endpoint);
    if (server_key) snprintf(n->server_key, sizeof n->server_key, "%s", server_key);
    n->ram_bytes = ram_bytes;
    c->n_nodes++;
    /* nodes[] may have moved: refresh every name pointer. */
    for (int i = 0; i < c->n_nodes; i++) c->names[i] = c->nodes[i].name;
    return 0;
}

cluster *cluster_parse(const char *json, char *err, size_t errlen) {
    cJSON *root = cJSON_Parse(json);
    cluster *c = NULL;
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        fp_fail(err, errlen, "not valid JSON near: %.40s", at ? at : "?");
        goto bad;
    }
    if (!cJSON_IsObject(root)) {
        fp_fail(err, errlen, "the top level must be an object with a \"nodes\" array");
        goto bad;
    }
    for (const cJSON *it = root->child; it; it = it->next) {
        if (strcmp(it->string, "format") == 0) {
            if (!cJSON_IsString(it) || strcmp(it->valuestring, "flashpool-cluster") != 0) {
                fp_fail(err, errlen, "\"format\" must be \"flashpool-cluster\"");
                goto bad;
            }
        } else if (strcmp(it->string, "version") == 0) {
            if (!cJSON_IsNumber(it) || it->valuedouble != 1) {
                fp_fail(err, errlen, "\"version\" must be 1");
                goto bad;
            }
        } else if (strcmp(it->string, "nodes") != 0) {
            fp_fail(err, errlen, "unknown key \"%s\" (expected format, version, nodes)", it->string);
            goto bad;
        }
    }
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    if (!cJSON_IsArray(nodes)) {
        fp_fail(err, errlen, "\"nodes\" must be an array of {\"name\", \"endpoint\", \"ram_mb\"} objects");
        goto bad;
    }
    c = cluster_new();
    if (!c) {
        fp_fail(err, errlen, "out of memory");
        goto bad;
    }
    int i = 0;
    for (const cJSON *n = nodes->child; n; n = n->next, i++) {
        if (!cJSON_IsObject(n)) {
            fp_fail(err, errlen, "nodes[%d] must be an object", i);
            goto bad;
        }
        const char *name = NULL, *ep = NULL, *key = NULL;
        uint64_t ram = 0;
        for (const cJSON *f = n->child; f; f = f->next) {
            if (strcmp(f->string, "name") == 0 && cJSON_IsString(f)) name = f->valuestring;
            else if (strcmp(f->string, "endpoint") == 0 && cJSON_IsString(f)) ep = f->valuestring;
            else if (strcmp(f->string, "server_key") == 0 && cJSON_IsString(f)) key = f->valuestring;
            else if (strcmp(f->string, "ram_mb") == 0 && cJSON_IsNumber(f) && f->valuedouble >= 0 &&
                     f->valuedouble <= 1e12 && f->valuedouble == (double)(uint64_t)f->valuedouble)
                ram = (uint64_t)f->valuedouble << 20;
            else {
                fp_fail(err, errlen, "nodes[%d].%s: unknown key or wrong type (name, endpoint, server_key: strings; "
                                  "ram_mb: non-negative integer)", i, f->string);
                goto bad;
            }
        }
        if (!ep) {
            fp_fail(err, errlen, "nodes[%d] has no \"endpoint\"", i);
            goto bad;
        }
        char sub[512];
        if (cluster_add(c, name, ep, ram, key, sub, sizeof sub)) {
            fp_fail(err, errlen, "nodes[%d]: %s", i, sub);
            goto bad;
        }
    }
    cJSON_Delete(root);
    return c;
bad:
    cluster_free(c);
    cJSON_Delete(root);
    return NULL;
}

cluster *cluster_load(const char *path, char *err, size_t errlen) {
    char *buf = fp_read_text_file(path, (size_t)1 << 20, "cluster file", NULL, err, errlen);
    if (!buf) return NULL;
    char sub[768];
    cluster *c = cluster_parse(buf, sub, sizeof sub);
    free(buf);
    if (!c) fp_fail(err, errlen, "%s: %s", path, sub);
    return c;
}
