/* transport_rdma.c — placeholder until the ring transports land. */
#include "transport_impl.h"

#include <stdio.h>

transport *transport_rdma_open(const char *endpoint, int listen, const transport_opts *o, char *err, size_t errlen) {
    (void)listen;
    (void)o;
    snprintf(err, errlen, "%s: the rdma transport is not built yet", endpoint);
    return NULL;
}
