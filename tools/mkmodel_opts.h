/* mkmodel_opts.h — command line of flashpool-mkmodel: preset, shape and
 * weight-scale overrides, seed, expert type, output path, threads. Kept out
 * of main_mkmodel.c so the precedence rules (preset < --cond < explicit
 * options, whatever their order) are unit-tested. */
#ifndef FP_MKMODEL_OPTS_H
#define FP_MKMODEL_OPTS_H

#include <stddef.h>
#include <stdio.h>

#include "mkmodel_plan.h"

typedef struct mkmodel_opts {
    mkmodel_config cfg;
    const char *out;        /* argv string; NULL when --help */
    int threads;            /* default 2 */
    int quiet;
    int help;               /* --help given: print usage, exit 0 */
    int hash_clamped;       /* hash_layers was lowered to layers (not given explicitly) */
} mkmodel_opts;

/* 0 on success (check o->help), -1 with a message naming the bad option. */
int mkmodel_opts_parse(int argc, char **argv, mkmodel_opts *o, char *err, size_t errlen);
void mkmodel_usage(FILE *out);

#endif
