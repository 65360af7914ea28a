/* observer_chain.c — fan one fwd_observer out to two (see observer_chain.h). */
#include "observer_chain.h"

#include <string.h>

static void chain_hc(void *ud, int64_t pos, int stage, const float *H) {
    const observer_chain *ch = ud;
    if (ch->a.on_hc) ch->a.on_hc(ch->a.ud, pos, stage, H);
    if (ch->b.on_hc) ch->b.on_hc(ch->b.ud, pos, stage, H);
}

static void chain_final(void *ud, int64_t pos, const float *collapsed, const float *normed) {
    const observer_chain *ch = ud;
    if (ch->a.on_final) ch->a.on_final(ch->a.ud, pos, collapsed, normed);
    if (ch->b.on_final) ch->b.on_final(ch->b.ud, pos, collapsed, normed);
}

static void chain_route(void *ud, int64_t pos, int layer, const int32_t *experts, const float *weights, int n) {
    const observer_chain *ch = ud;
    if (ch->a.on_route) ch->a.on_route(ch->a.ud, pos, layer, experts, weights, n);
    if (ch->b.on_route) ch->b.on_route(ch->b.ud, pos, layer, experts, weights, n);
}

static void chain_indexer(void *ud, int64_t pos, int layer, int n_comp, const int32_t *rows, int n_rows) {
    const observer_chain *ch = ud;
    if (ch->a.on_indexer) ch->a.on_indexer(ch->a.ud, pos, layer, n_comp, rows, n_rows);
    if (ch->b.on_indexer) ch->b.on_indexer(ch->b.ud, pos, layer, n_comp, rows, n_rows);
}

fwd_observer observer_chain_make(observer_chain *ch, const fwd_observer *a, const fwd_observer *b) {
    memset(ch, 0, sizeof(*ch));
    if (a) ch->a = *a;
    if (b) ch->b = *b;
    fwd_observer o = {.ud = ch};
    if (ch->a.on_hc || ch->b.on_hc) o.on_hc = chain_hc;
    if (ch->a.on_final || ch->b.on_final) o.on_final = chain_final;
    if (ch->a.on_route || ch->b.on_route) o.on_route = chain_route;
    if (ch->a.on_indexer || ch->b.on_indexer) o.on_indexer = chain_indexer;
    return o;
}
