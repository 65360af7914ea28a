/* mkmodel_opts.c — parses flashpool-mkmodel's command line into a
 * mkmodel_config (see mkmodel_opts.h). Options may come in any order: the
 * preset is applied first, then --cond, then every explicit override. */
#include "errmsg.h"
#include "mkmodel_opts.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The float knobs, by option name (underscores as dashes on the CLI). */
#define K(x, help) {#x, offsetof(mkmodel_scales, x), help}
static const struct { const char *name; size_t off; const char *help; } k_scales[] = {
    K(expert_gain, "std multiplier of routed and shared gate/up (default 4: hits the SwiGLU clamp)"),
    K(gain, "std multiplier of every sublayer output projection (default 1)"),
    K(attn_gain, "override --gain for attn_output_b"),
    K(ffn_gain, "override --gain for ffn_down_exps and ffn_down_shexp"),
    K(router_scale, "std multiplier of ffn_gate_inp (default 1)"),
    K(router_bias_std, "std of exp_probs_b.bias (default 0.1)"),
    K(indexer_scale, "std multiplier of indexer.proj and indexer.attn_q_b (default 1)"),
    K(head_gain, "std multiplier of output.weight (default 1)"),
    K(sink_mean, "mean of the attention sink logits (default 0)"),
};
#undef K
#define N_SCALES (sizeof k_scales / sizeof k_scales[0])

/* "--ff-exp" matches field "ff_exp". */
static int opt_is(const char *arg, const char *field) {
    if (strncmp(arg, "--", 2) != 0) return 0;
    arg += 2;
    for (; *arg && *field; arg++, field++)
        if (*arg != (*field == '_' ? '-' : *field)) return 0;
    return *arg == 0 && *field == 0;
}

static int parse_u32(const char *s, uint32_t *v) {
    if (!s || !*s || *s == '-' || *s == '+') return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end || x > UINT32_MAX) return -1;
    *v = (uint32_t)x;
    return 0;
}

static int parse_f32(const char *s, float *v) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    float x = strtof(s, &end);
    if (errno || *end || !isfinite(x)) return -1;
    *v = x;
    return 0;
}

void mkmodel_usage(FILE *out) {
    mkmodel_shape tiny, real;
    mkmodel_preset("tiny", &tiny);
    mkmodel_preset("real", &real);
    fprintf(out,
            "usage: flashpool-mkmodel --out FILE.gguf [--preset tiny|real] [--seed N] [--cond]\n"
            "                         [--expert-type iq2|q4] [shape and scale overrides]\n"
            "\n"
            "Writes a DeepSeek V4 Flash (\"deepseek4\") GGUF with deterministic pseudo-random\n"
            "weights: every tensor and metadata key of the real layout, at the chosen shape,\n"
            "plus a small synthetic byte-level BPE tokenizer with the DeepSeek chat tokens.\n"
            "The same seed and shape always give the same bytes.\n"
            "\n"
            "  --out FILE         output path (written as FILE.tmp, renamed when complete)\n"
            "  --preset NAME      tiny (the reference-vector shape, default) or real (DeepSeek V4\n"
            "                     Flash widths, 4 layers, 16 experts: a few GB)\n"
            "  --seed N           weight seed (default 1)\n"
            "  --cond             well-conditioned variant: --gain 0.03 --ffn-gain 0.001\n"
            "                     --sink-mean 2 (explicit options still override)\n"
            "  --expert-type T    iq2: IQ2_XXS gate/up + Q2_K down (default, the released 2-bit\n"
            "                     file); q4: Q4_K gate/up/down\n"
            "  --threads N        generator threads (default 2)\n"
            "  --quiet            no progress line\n"
            "  -h, --help         this text\n"
            "\n"
            "Shape overrides (tiny / real defaults):\n");
    for (const mkmodel_field *f = mkmodel_shape_fields; f->name; f++) {
        char opt[40] = "--";
        size_t k = 2;
        for (const char *p = f->name; *p && k + 1 < sizeof opt; p++) opt[k++] = *p == '_' ? '-' : *p;
        opt[k] = 0;
        fprintf(out, "  %-22s N   (%u / %u)\n", opt, *mkmodel_shape_field(&tiny, f), *mkmodel_shape_field(&real, f));
    }
    fprintf(out, "\nWeight-scale overrides:\n");
    for (size_t i = 0; i < N_SCALES; i++) {
        char opt[40] = "--";
        size_t k = 2;
        for (const char *p = k_scales[i].name; *p && k + 1 < sizeof opt; p++) opt[k++] = *p == '_' ? '-' : *p;
        opt[k] = 0;
        fprintf(out, "  %-20s X   %s\n", opt, k_scales[i].help);
    }
    fprintf(out,
            "\nLayer schedule: compress ratio 0 for layers 0-1, then 4 (even) / long-ratio (odd);\n"
            "layers below --hash-layers route by a token->expert table, the others by top-k.\n"
            "If --layers is below the preset's hash-layers (3), hash-layers follows it.\n"
            "\n"
            "Examples:\n"
            "  flashpool-mkmodel --out tiny.gguf --seed 1\n"
            "  flashpool-mkmodel --preset tiny --seed 7 --cond --out default-tiny.gguf\n"
            "  flashpool-mkmodel --preset real --layers 4 --experts 16 --out real4.gguf\n");
}

int mkmodel_opts_parse(int argc, char **argv, mkmodel_opts *o, char *err, size_t errlen) {
    memset(o, 0, sizeof *o);
    o->threads = 2;
    o->cfg.seed = 1;
    o->cfg.expert_type = MKMODEL_EXPERTS_IQ2;
    const char *preset = "tiny";
    int cond = 0;
    /* Explicit overrides, applied after the preset and --cond. */
    uint32_t shape_v[32];
    int shape_set[32] = {0};
    float scale_v[N_SCALES];
    int scale_set[N_SCALES] = {0};
    size_t n_fields = 0;
    while (mkmodel_shape_fields[n_fields].name) n_fields++;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o->help = 1;
            return 0;
        }
        if (strcmp(a, "--cond") == 0) {
            cond = 1;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            o->quiet = 1;
            continue;
        }
        /* everything else takes a value */
        int found = 0;
        if (strcmp(a, "--out") == 0 || strcmp(a, "-o") == 0) {
            if (!val || !*val) goto missing;
            o->out = val;
            found = 1;
        } else if (strcmp(a, "--preset") == 0) {
            mkmodel_shape tmp;
            if (!val) goto missing;
            if (mkmodel_preset(val, &tmp)) {
                fp_fail(err, errlen, "--preset: unknown preset '%s' (use tiny or real)", val);
                return -1;
            }
            preset = val;
            found = 1;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            if (!val || !*val || *val == '-') goto bad;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 10);
            if (errno || *end) goto bad;
            o->cfg.seed = s;
            found = 1;
        } else if (strcmp(a, "--expert-type") == 0) {
            if (!val) goto missing;
            if (strcmp(val, "iq2") == 0) o->cfg.expert_type = MKMODEL_EXPERTS_IQ2;
            else if (strcmp(val, "q4") == 0) o->cfg.expert_type = MKMODEL_EXPERTS_Q4;
            else {
                fp_fail(err, errlen, "--expert-type: '%s' is not iq2 or q4", val);
                return -1;
            }
            found = 1;
        } else if (strcmp(a, "--threads") == 0) {
            uint32_t t;
            if (parse_u32(val, &t) || t < 1 || t > 256) goto bad;
            o->threads = (int)t;
            found = 1;
        }
        for (size_t f = 0; !found && f < n_fields; f++)
            if (opt_is(a, mkmodel_shape_fields[f].name)) {
                if (parse_u32(val, &shape_v[f])) goto bad;
                shape_set[f] = 1;
                found = 1;
            }
        for (size_t k = 0; !found && k < N_SCALES; k++)
            if (opt_is(a, k_scales[k].name)) {
                if (parse_f32(val, &scale_v[k])) goto bad;
                if (strcmp(k_scales[k].name, "sink_mean") != 0 && scale_v[k] < 0) {
                    fp_fail(err, errlen, "%s must not be negative (it scales a standard deviation)", a);
                    return -1;
                }
                scale_set[k] = 1;
                found = 1;
            }
        if (!found) {
            fp_fail(err, errlen, "unknown option '%s' (see --help)", a);
            return -1;
        }
        i++; /* consumed the value */
        continue;
    missing:
        fp_fail(err, errlen, "%s needs a value (see --help)", a);
        return -1;
    bad:
        if (!val) goto missing;
        fp_fail(err, errlen, "%s: bad value '%s' (see --help)", a, val);
        return -1;
    }

    snprintf(o->cfg.preset, sizeof o->cfg.preset, "%s", preset);
    mkmodel_preset(preset, &o->cfg.shape);
    mkmodel_scales_default(&o->cfg.scales);
    if (cond) mkmodel_scales_apply_cond(&o->cfg.scales);
    int hash_given = 0;
    for (size_t f = 0; f < n_fields; f++)
        if (shape_set[f]) {
            *mkmodel_shape_field(&o->cfg.shape, &mkmodel_shape_fields[f]) = shape_v[f];
            if (strcmp(mkmodel_shape_fields[f].name, "hash_layers") == 0) hash_given = 1;
        }
    for (size_t k = 0; k < N_SCALES; k++)
        if (scale_set[k]) *(float *)((char *)&o->cfg.scales + k_scales[k].off) = scale_v[k];
    /* A 2-layer slice of the real model cannot have 3 hash layers; follow
     * --layers unless the user asked for a specific count. */
    if (!hash_given && o->cfg.shape.hash_layers > o->cfg.shape.layers) {
        o->cfg.shape.hash_layers = o->cfg.shape.layers;
        o->hash_clamped = 1;
    }
    if (!o->out) {
        fp_fail(err, errlen, "--out FILE is required (see --help)");
        return -1;
    }
    return mkmodel_check_shape(&o->cfg.shape, err, errlen);
}
