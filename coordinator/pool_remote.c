/* pool_remote.c — the pool's remote lane (expert nodes). Placeholder until
 * the node protocol (proto/node_client.h) lands: with nodes configured,
 * pool_open fails with a clear message; everything local works. */
#include "pool_internal.h"

int pool_remote_open(pool *p, char *err, size_t errlen) {
    (void)p;
    return pool_fail(err, errlen, "expert nodes are not supported by this build yet (no node protocol)");
}
void pool_remote_close(pool *p) { (void)p; }
void pool_remote_begin_layer(pool *p) { (void)p; }
int pool_remote_pick(pool *p, xgroup *g) {
    (void)p;
    (void)g;
    return -1;
}
int pool_remote_send(pool *p, char *err, size_t errlen) {
    (void)p;
    (void)err;
    (void)errlen;
    return 0;
}
int pool_remote_collect(pool *p, char *err, size_t errlen) {
    (void)p;
    (void)err;
    (void)errlen;
    return 0;
}
void pool_remote_node_stats(pool *p) { (void)p; }
