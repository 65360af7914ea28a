/* cluster.h — the expert nodes a coordinator uses: name, endpoint, RAM
 * budget, optional CurveZMQ server key. Built from repeated --node flags or
 * from a cluster JSON file (format documented at cluster_load). */
#ifndef FP_CLUSTER_H
#define FP_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#define CLUSTER_NAME_MAX 64
#define CLUSTER_ENDPOINT_MAX 256
#define CLUSTER_KEY_MAX 41          /* Z85 text of a 32-byte key + NUL */

typedef struct cluster_node {
    char name[CLUSTER_NAME_MAX];
    char endpoint[CLUSTER_ENDPOINT_MAX];   /* e.g. tcp://10.0.0.2:7070 */
    uint64_t ram_bytes;                    /* expert RAM budget; 0 = unlimited */
    char server_key[CLUSTER_KEY_MAX];      /* "" = none configured */
} cluster_node;

typedef struct cluster {
    int n_nodes;
    cluster_node *nodes;
    char **names;                          /* [n_nodes] -> nodes[i].name (for placement_*) */
} cluster;

cluster *cluster_new(void);
void cluster_free(cluster *c);
/* Append a node; name NULL = the endpoint. Errors: empty/long fields,
 * duplicate name or endpoint, endpoint without a scheme (tcp://, ipc://, ...). */
int cluster_add(cluster *c, const char *name, const char *endpoint, uint64_t ram_bytes,
                const char *server_key, char *err, size_t errlen);

/* JSON file:
 *   {
 *     "format": "flashpool-cluster", "version": 1,      (both optional)
 *     "nodes": [
 *       {"name": "a", "endpoint": "tcp://10.77.0.2:7070", "ram_mb": 8192,
 *        "server_key": "<40-char Z85 CurveZMQ public key>"},   (ram_mb, server_key optional)
 *       ...
 *     ]
 *   }
 * Unknown keys are rejected (a typo must not silently drop a setting). */
cluster *cluster_load(const char *path, char *err, size_t errlen);
cluster *cluster_parse(const char *json, char *err, size_t errlen);

#endif
