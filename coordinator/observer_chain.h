/* observer_chain.h — run two forward-pass observers where the engine takes
 * one (e.g. the debug dump and the routing trace together). */
#ifndef FP_OBSERVER_CHAIN_H
#define FP_OBSERVER_CHAIN_H

#include "forward.h"

typedef struct observer_chain {
    fwd_observer a, b;      /* copies; either may be all-NULL */
} observer_chain;

/* Returns an observer calling a's then b's callbacks (NULL a or b = none).
 * ch must outlive every use of the result. A callback slot is left NULL when
 * neither side has it, so the engine still skips work nobody observes. */
fwd_observer observer_chain_make(observer_chain *ch, const fwd_observer *a, const fwd_observer *b);

#endif
