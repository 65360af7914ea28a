/* placement.h — which expert node(s) hold each routed expert.
 *
 * A placement maps (layer, expert) to an ordered list of node indices
 * (replicas; the first live one is asked first). An empty list means "the
 * coordinator only": the expert is computed from the hot-expert cache or
 * read from the coordinator's GGUF (design.md §5).
 *
 * Built-in strategies: round-robin and contiguous-by-layer. Placements are
 * also user-editable JSON files (format documented at placement_load). */
#ifndef FP_PLACEMENT_H
#define FP_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#define PLACEMENT_MAX_NODES 256
#define PLACEMENT_MAX_REPLICAS 8

typedef struct placement {
    int n_layer, n_expert, n_nodes;
    uint8_t *n_rep;          /* [n_layer * n_expert]: replicas of the expert (0 = coordinator only) */
    uint16_t *nodes;         /* [n_layer * n_expert * PLACEMENT_MAX_REPLICAS] node indices */
} placement;

/* An empty placement (every expert coordinator-only). NULL on bad sizes / OOM. */
placement *placement_new(int n_layer, int n_expert, int n_nodes);
void placement_free(placement *p);

/* Expert i of the model in global order g = layer * n_expert + expert goes to
 * node g % n_nodes; replica r (r < replicas) to (g + r) % n_nodes. */
placement *placement_round_robin(int n_layer, int n_expert, int n_nodes, int replicas,
                                 char *err, size_t errlen);
/* The global order cut into n_nodes contiguous runs (whole layers together
 * when n_nodes divides n_layer); replica r on the r-th next node. */
placement *placement_contiguous(int n_layer, int n_expert, int n_nodes, int replicas,
                                char *err, size_t errlen);

static inline int placement_count(const placement *p, int layer, int expert) {
    return p->n_rep[(size_t)layer * p->n_expert + expert];
}
static inline const uint16_t *placement_nodes(const placement *p, int layer, int expert) {
    return p->nodes + ((size_t)layer * p->n_expert + expert) * PLACEMENT_MAX_REPLICAS;
}
/* Append node to the expert's replica list. -1 if full, out of range or already listed. */
int placement_add(placement *p, int layer, int expert, int node);

/* Structural checks: indices in range, no duplicate replica. 0 or -1 + err. */
int placement_validate(const placement *p, char *err, size_t errlen);

/* Bytes each node must hold: out[n_nodes]; layer_expert_bytes[l] is the size
 * of one expert of layer l. */
void placement_node_bytes(const placement *p, const size_t *layer_expert_bytes, uint64_t *out);
/* Fails (naming the node, its need and its budget) when a node's experts
 * exceed its budget; budget 0 = unlimited. */
int placement_check_budgets(const placement *p, const size_t *layer_expert_bytes,
                            const uint64_t *node_budget, char *const *node_names,
                            char *err, size_t errlen);

/* JSON file (user-editable):
 *   {
 *     "format": "flashpool-placement", "version": 1,
 *     "n_layer": 43, "n_expert": 256,
 *     "nodes": ["nodeA", "nodeB"],
 *     "layers": [ [[0], [1], [0, 1], [], ...],    <- layer 0: expert e -> replicas
 *                 ... ]
 *   }
 * "nodes" names the node indices used in "layers"; a replica may be given as
 * an index into "nodes" or as the node's name. On load the names are matched
 * to the cluster's node names (cluster_names[n_cluster]), so reordering the
 * cluster file does not silently move experts; an unknown name is an error.
 * n_layer/n_expert must match the model. */
placement *placement_load(const char *path, int n_layer, int n_expert,
                          char *const *cluster_names, int n_cluster, char *err, size_t errlen);
/* Same from a string (tests). */
placement *placement_parse(const char *json, int n_layer, int n_expert,
                           char *const *cluster_names, int n_cluster, char *err, size_t errlen);
/* Write the file (atomically: temp + rename). node_names[n_nodes]. */
int placement_save(const placement *p, const char *path, char *const *node_names,
                   char *err, size_t errlen);

#endif
