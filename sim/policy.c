/* Policy registry and parameter parsing. A new policy is one file in sim/policies/ plus one line in
 * the registry below. */
#include "sim/policy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const wk_policy_ops wk_policy_prefill;
extern const wk_policy_ops wk_policy_full;
extern const wk_policy_ops wk_policy_kivi2;
extern const wk_policy_ops wk_policy_kivi4;
extern const wk_policy_ops wk_policy_cachegen;
extern const wk_policy_ops wk_policy_wikv;
extern const wk_policy_ops wk_policy_hybrid;
extern const wk_policy_ops wk_policy_h2o;
extern const wk_policy_ops wk_policy_snapkv;
extern const wk_policy_ops wk_policy_streamingllm;
extern const wk_policy_ops wk_policy_pyramidkv;
extern const wk_policy_ops wk_policy_simcalkv;

static const wk_policy_ops *const registry[] = {
    &wk_policy_prefill,
    &wk_policy_full,
    &wk_policy_kivi2,
    &wk_policy_kivi4,
    &wk_policy_cachegen,
    &wk_policy_wikv,
    &wk_policy_hybrid,
    &wk_policy_h2o,
    &wk_policy_snapkv,
    &wk_policy_streamingllm,
    &wk_policy_pyramidkv,
    &wk_policy_simcalkv,
    NULL,
};

const wk_policy_ops *const *wk_policy_registry(void) { return registry; }

const wk_policy_ops *wk_policy_find(const char *name) {
    for (size_t i = 0; registry[i]; i++)
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    return NULL;
}

static int unknown_policy(const char *name, wk_err *err) {
    char names[512] = "";
    size_t used = 0;
    for (size_t i = 0; registry[i]; i++)
        used += (size_t)snprintf(names + used, used < sizeof names ? sizeof names - used : 0, "%s%s", i ? ", " : "",
                                 registry[i]->name);
    return wk_err_set(err, WK_EINVAL, "unknown policy \"%s\" (known: %s)", name, names);
}

static int set_param(wk_policy *p, const char *key, const char *val, wk_err *err) {
    const wk_policy_ops *ops = p->ops;
    for (size_t i = 0; i < ops->n_params; i++) {
        const wk_param_desc *d = &ops->params[i];
        if (strcmp(d->name, key) != 0) continue;
        char *end;
        errno = 0;
        double v = strtod(val, &end);
        if (end == val || *end || !isfinite(v))
            return wk_err_set(err, WK_EINVAL, "policy %s: %s=\"%s\" is not a number", ops->name, key, val);
        if (d->is_int && v != floor(v))
            return wk_err_set(err, WK_EINVAL, "policy %s: %s=%s must be an integer", ops->name, key, val);
        if (v < d->min || v > d->max)
            return wk_err_set(err, WK_EINVAL, "policy %s: %s=%s out of range [%g, %g]", ops->name, key, val, d->min,
                              d->max);
        p->param[i] = v;
        return 0;
    }
    char keys[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < ops->n_params; i++)
        used += (size_t)snprintf(keys + used, used < sizeof keys ? sizeof keys - used : 0, "%s%s", i ? ", " : "",
                                 ops->params[i].name);
    return wk_err_set(err, WK_EINVAL, "policy %s: unknown parameter \"%s\" (parameters: %s)", ops->name, key,
                      used ? keys : "none");
}

static void canonical_spec(wk_policy *p) {
    size_t used = (size_t)snprintf(p->spec, sizeof p->spec, "%s", p->ops->name);
    for (size_t i = 0; i < p->ops->n_params; i++)
        used += (size_t)snprintf(p->spec + used, used < sizeof p->spec ? sizeof p->spec - used : 0, "%c%s=%g",
                                 i ? ',' : ':', p->ops->params[i].name, p->param[i]);
}

int wk_policy_create(const char *spec, wk_policy *p, wk_err *err) {
    memset(p, 0, sizeof *p);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    char *colon = strchr(buf, ':');
    if (colon) *colon = '\0';
    p->ops = wk_policy_find(buf);
    if (!p->ops) return unknown_policy(buf, err);
    if (p->ops->n_params > WK_POLICY_MAX_PARAMS)
        return wk_err_set(err, WK_EINVAL, "policy %s: too many parameters", p->ops->name);
    for (size_t i = 0; i < p->ops->n_params; i++) p->param[i] = p->ops->params[i].def;
    if (colon) {
        char *save = NULL;
        for (char *kv = strtok_r(colon + 1, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            if (!eq) return wk_err_set(err, WK_EINVAL, "policy %s: expected key=value, got \"%s\"", p->ops->name, kv);
            *eq = '\0';
            int rc = set_param(p, kv, eq + 1, err);
            if (rc) return rc;
        }
    }
    p->state = calloc(1, p->ops->state_size ? p->ops->state_size : 1);
    if (!p->state) return wk_err_set(err, WK_ENOMEM, "policy %s: out of memory", p->ops->name);
    canonical_spec(p);
    return 0;
}

void wk_policy_free(wk_policy *p) {
    if (!p) return;
    if (p->state && p->ops && p->ops->release) p->ops->release(p->state);
    free(p->state);
    p->state = NULL;
}

double wk_policy_param(const wk_policy *p, const char *name) {
    for (size_t i = 0; i < p->ops->n_params; i++)
        if (strcmp(p->ops->params[i].name, name) == 0) return p->param[i];
    return NAN;
}

double wk_view_coverage(const wk_view *v) {
    if (v->tokens_prefilled >= v->req->context_tokens) return 1.0;
    double c = v->plan->importance_total > 0 ? (v->importance_usable + v->importance_local) / v->plan->importance_total
               : v->plan->kv_values_total > 0 ? v->kv_values_usable / v->plan->kv_values_total : 0;
    return c > 1 ? 1 : c;
}



long wk_policy_send_in_order(void *state, const double *param, const wk_view *v) {
    (void)state;
    (void)param;
    return wk_policy_next_in_order(v);
}




int wk_policy_sizes_ensure(wk_policy_sizes *c, const wk_model_spec *m, int batch, const wk_kv_tensor *sample,
                           wk_err *err) {
    if (c->layers == m->n_layers && c->kv_heads == m->n_kv_heads && c->head_dim == m->head_dim && c->batch == batch &&
        c->sample == sample)
        return 0;
    wk_codec_size_params p = wk_codec_size_defaults(m->n_layers, m->n_kv_heads, m->head_dim);
    if (batch > 0) p.wikv_batch_units = batch;
    p.sample = sample;
    int rc = wk_codec_sizes_measure(&p, &c->sizes, err);
    if (rc) return rc;
    c->layers = m->n_layers;
    c->kv_heads = m->n_kv_heads;
    c->head_dim = m->head_dim;
    c->batch = batch;
    c->sample = sample;
    return 0;
}
