/* LR schedulers: every type against PyTorch's sequences (tests/fixtures/schedulers.json,
 * from tools/gen_sched_fixtures.py), qWarmupScheduler against its formula, state
 * save/load round trips (resume = uninterrupted run, bit for bit) for every type and
 * nested ones, writing into an optimizer's groups, units, and the error messages.
 *
 * Most tests run standalone (opt = NULL, base lrs from wk_scheduler_set_base_lrs). The
 * optimizer algorithms are written elsewhere; the optimizer test here uses a stand-in
 * built on optim/optimizer-impl.h, driving the real group/lr functions of optimizer.c;
 * the last tests drive a real AdamW (autograd loss) with qWarmupScheduler(CosineAnnealingLR)
 * and round-trip both states mid-run. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../optim/optimizer-impl.h"
#include "test_util.h"

TestSuite(scheduler, .init = tu_setup, .fini = tu_teardown);

static const double BASE[2] = {0.1, 0.02}; /* the fixture's two groups */

/* Assert that `expr` returned -1 with a message containing `needle`. */
#define expect_fail(expr, needle)                                                         \
    do {                                                                                  \
        wk_clear_error();                                                                 \
        int r_ = (expr);                                                                  \
        cr_assert_eq(r_, -1, "%s returned %d, expected -1", #expr, r_);                   \
        cr_assert(strstr(wk_last_error(), needle), "error \"%s\" does not mention \"%s\"", \
                  wk_last_error(), needle);                                               \
    } while (0)

static bool close_rel(double a, double e, double rtol)
{
    return a == e || fabs(a - e) <= rtol * fabs(e);
}

/* ---- building schedulers from the fixture's JSON (torch's keyword names) ---- */

static double num(const cJSON *a, const char *k, double def)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(a, k);
    return cJSON_IsNumber(it) ? it->valuedouble : def;
}
static int64_t inum(const cJSON *a, const char *k, int64_t def)
{
    return (int64_t)num(a, k, (double)def);
}
static const char *str(const cJSON *a, const char *k, const char *def)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(a, k);
    return cJSON_IsString(it) ? it->valuestring : def;
}
/* a number or a list: the list into buf, its length into *n (0 for a number) */
static double num_or_list(const cJSON *a, const char *k, double def, double *buf, int *n)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(a, k);
    *n = 0;
    if (cJSON_IsArray(it)) {
        for (const cJSON *x = it->child; x; x = x->next) buf[(*n)++] = x->valuedouble;
        return 0;
    }
    return cJSON_IsNumber(it) ? it->valuedouble : def;
}

static double lambda_pow095(int64_t k, void *u)
{
    (void)u;
    return pow(0.95, (double)k);
}
static double lambda_inv(int64_t k, void *u)
{
    (void)u;
    return 1.0 / (double)(k + 1);
}

static wk_scheduler *build(const char *type, const cJSON *a, wk_optimizer *opt);

static wk_scheduler *build_obj(const cJSON *o, wk_optimizer *opt)
{
    return build(str(o, "type", ""), cJSON_GetObjectItemCaseSensitive(o, "args"), opt);
}

static wk_scheduler *build(const char *t, const cJSON *a, wk_optimizer *opt)
{
    if (!strcmp(t, "StepLR"))
        return wk_step_lr_new(opt, inum(a, "step_size", 0), num(a, "gamma", 0.1));
    if (!strcmp(t, "MultiStepLR")) {
        int64_t ms[16];
        int n = 0;
        for (const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, "milestones")->child; x;
             x = x->next)
            ms[n++] = (int64_t)x->valuedouble;
        return wk_multistep_lr_new(opt, ms, n, num(a, "gamma", 0.1));
    }
    if (!strcmp(t, "ExponentialLR")) return wk_exponential_lr_new(opt, num(a, "gamma", 0));
    if (!strcmp(t, "CosineAnnealingLR"))
        return wk_cosine_lr_new(opt, inum(a, "T_max", 0), num(a, "eta_min", 0));
    if (!strcmp(t, "LinearLR"))
        return wk_linear_lr_new(opt, num(a, "start_factor", 1.0 / 3), num(a, "end_factor", 1.0),
                                inum(a, "total_iters", 5));
    if (!strcmp(t, "ConstantLR"))
        return wk_constant_lr_new(opt, num(a, "factor", 1.0 / 3), inum(a, "total_iters", 5));
    if (!strcmp(t, "PolynomialLR"))
        return wk_polynomial_lr_new(opt, inum(a, "total_iters", 5), num(a, "power", 1.0));
    if (!strcmp(t, "OneCycleLR")) {
        wk_onecycle_opts o = wk_onecycle_opts_default();
        static double mx[8];
        o.max_lr = num_or_list(a, "max_lr", 0, mx, &o.n_max_lrs);
        o.max_lrs = o.n_max_lrs ? mx : NULL;
        o.total_steps = inum(a, "total_steps", 0);
        o.epochs = inum(a, "epochs", 0), o.steps_per_epoch = inum(a, "steps_per_epoch", 0);
        o.pct_start = num(a, "pct_start", o.pct_start);
        o.anneal_strategy = str(a, "anneal_strategy", "cos");
        o.div_factor = num(a, "div_factor", o.div_factor);
        o.final_div_factor = num(a, "final_div_factor", o.final_div_factor);
        o.three_phase = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "three_phase"));
        return wk_onecycle_lr_new(opt, &o);
    }
    if (!strcmp(t, "CosineAnnealingWarmRestarts"))
        return wk_cosine_restarts_lr_new(opt, inum(a, "T_0", 0), inum(a, "T_mult", 1),
                                         num(a, "eta_min", 0));
    if (!strcmp(t, "LambdaLR"))
        return wk_lambda_lr_new(opt, !strcmp(str(a, "fn", ""), "inv") ? lambda_inv : lambda_pow095,
                                NULL);
    if (!strcmp(t, "ReduceLROnPlateau")) {
        wk_plateau_opts o = wk_plateau_opts_default();
        static double mn[8];
        o.mode = str(a, "mode", "min");
        o.factor = num(a, "factor", o.factor);
        o.patience = inum(a, "patience", o.patience);
        o.threshold = num(a, "threshold", o.threshold);
        o.threshold_mode = str(a, "threshold_mode", "rel");
        o.cooldown = inum(a, "cooldown", 0);
        o.min_lr = num_or_list(a, "min_lr", 0, mn, &o.n_min_lrs);
        o.min_lrs = o.n_min_lrs ? mn : NULL;
        o.eps = num(a, "eps", o.eps);
        return wk_plateau_new(opt, &o);
    }
    if (!strcmp(t, "SequentialLR") || !strcmp(t, "ChainedScheduler")) {
        wk_scheduler *subs[8];
        int n = 0;
        for (const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, "schedulers")->child; x;
             x = x->next)
            subs[n++] = build_obj(x, opt);
        if (!strcmp(t, "ChainedScheduler")) return wk_chained_lr_new(subs, n);
        int64_t ms[8];
        int nm = 0;
        for (const cJSON *x = cJSON_GetObjectItemCaseSensitive(a, "milestones")->child; x;
             x = x->next)
            ms[nm++] = (int64_t)x->valuedouble;
        return wk_sequential_lr_new(subs, n, ms, nm);
    }
    if (!strcmp(t, "qWarmupScheduler")) {
        wk_qwarmup_opts o = wk_qwarmup_opts_default();
        o.warmup_steps = inum(a, "warmup_steps", 0);
        o.warmup_epochs = inum(a, "warmup_epochs", 0);
        o.steps_per_epoch = inum(a, "steps_per_epoch", 0);
        o.warmup_factor = num(a, "warmup_factor", o.warmup_factor);
        o.step_on = str(a, "step_on", "optimizer_step");
        return wk_qwarmup_new(build_obj(cJSON_GetObjectItemCaseSensitive(a, "main"), opt), &o);
    }
    cr_assert_fail("unknown scheduler type %s", t);
    return NULL;
}

/* A standalone scheduler from {"type", "args"} JSON text, with the fixture's base lrs. */
static wk_scheduler *make(const char *json)
{
    cJSON *o = cJSON_Parse(json);
    cr_assert_not_null(o, "bad test JSON: %s", json);
    wk_scheduler *s = build_obj(o, NULL);
    cJSON_Delete(o);
    cr_assert_not_null(s, "%s: %s", json, wk_last_error());
    cr_assert_eq(wk_scheduler_set_base_lrs(s, BASE, 2), 0, "%s", wk_last_error());
    return s;
}

/* ---- the fixture ---- */

static cJSON *fixture(void)
{
    static cJSON *doc;
    if (doc) return doc;
    FILE *f = fopen(WK_FIXTURES "/schedulers.json", "rb");
    cr_assert_not_null(f, "cannot open %s", WK_FIXTURES "/schedulers.json");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    doc = cJSON_Parse(buf);
    free(buf);
    cr_assert_not_null(doc, "schedulers.json does not parse");
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(doc, "groups");
    cr_assert_eq(cJSON_GetArraySize(g), 2);
    cr_assert_eq(g->child->valuedouble, BASE[0]);
    cr_assert_eq(g->child->next->valuedouble, BASE[1]);
    return doc;
}

static const cJSON *cases(void) { return cJSON_GetObjectItemCaseSensitive(fixture(), "cases"); }
static int fixture_steps(void) { return (int)num(fixture(), "steps", 0); }

static wk_scheduler *make_case(const cJSON *c)
{
    wk_scheduler *s = build_obj(c, NULL);
    cr_assert_not_null(s, "%s: %s", str(c, "name", "?"), wk_last_error());
    cr_assert_eq(wk_scheduler_set_base_lrs(s, BASE, 2), 0, "%s", wk_last_error());
    return s;
}

/* step i of a case: with the i-th metric for ReduceLROnPlateau */
static int case_step(wk_scheduler *s, const cJSON *c, int i)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "metrics");
    if (m) return wk_scheduler_step_metric(s, cJSON_GetArrayItem(m, i)->valuedouble);
    return wk_scheduler_step(s);
}

static double at(const cJSON *rows, int k, int g)
{
    return cJSON_GetArrayItem(cJSON_GetArrayItem(rows, k), g)->valuedouble;
}

/* Every case: wick's lr(k) against torch's sequence ("lr", 1e-12) and torch's closed
 * form ("closed", 4e-16 relative: the same operations on the same libm agree to the
 * last bit or two). */
Test(scheduler, torch_fixtures)
{
    int ncases = 0, nclosed = 0, steps = fixture_steps();
    cr_assert_eq(steps, 30);
    for (const cJSON *c = cases()->child; c; c = c->next, ncases++) {
        const char *name = str(c, "name", "?");
        bool recursive_differs = !strcmp(name, "constant_0");
        const cJSON *lr = cJSON_GetObjectItemCaseSensitive(c, "lr");
        const cJSON *closed = cJSON_GetObjectItemCaseSensitive(c, "closed");
        bool has_closed = cJSON_IsArray(closed);
        nclosed += has_closed;
        cr_assert_eq(cJSON_GetArraySize(lr), steps + 1, "%s", name);
        wk_scheduler *s = make_case(c);
        cr_assert_str_eq(wk_scheduler_type_name(s), str(c, "type", ""));
        for (int k = 0; k <= steps; k++) {
            if (k) cr_assert_eq(case_step(s, c, k - 1), 0, "%s step %d: %s", name, k,
                                wk_last_error());
            cr_assert_eq(wk_scheduler_steps(s), k);
            for (int g = 0; g < 2; g++) {
                double v = wk_scheduler_get_lr(s, g);
                if (!recursive_differs)
                    cr_assert(close_rel(v, at(lr, k, g), 1e-12),
                              "%s lr(%d)[%d] = %.17g, torch %.17g", name, k, g, v, at(lr, k, g));
                if (has_closed)
                    cr_assert(close_rel(v, at(closed, k, g), 4e-16),
                              "%s lr(%d)[%d] = %.17g, torch closed form %.17g", name, k, g, v,
                              at(closed, k, g));
            }
        }
        if (recursive_differs) {
            /* torch's recursive ConstantLR(total_iters=0) never leaves base * factor */
            cr_assert(close_rel(at(lr, steps, 0), 0.5 * BASE[0], 1e-15));
            cr_assert_eq(wk_scheduler_get_lr(s, 0), BASE[0]);
        }
        wk_scheduler_free(s);
    }
    cr_assert_eq(ncases, 33);
    cr_assert_eq(nclosed, 17);
}

/* the types the fixture covers: every one with a torch counterpart */
Test(scheduler, fixture_covers_every_torch_type)
{
    bool seen[WK_SCHED_TYPE_COUNT] = {0};
    for (const cJSON *c = cases()->child; c; c = c->next) {
        wk_scheduler *s = make_case(c);
        seen[wk_scheduler_type(s)] = true;
        wk_scheduler_free(s);
    }
    for (int t = 0; t < WK_SCHED_TYPE_COUNT; t++)
        if (t != WK_SCHED_TYPE_QWARMUP) cr_assert(seen[t], "type %d has no torch fixture", t);
}

/* ---- state round trips ---- */

/* Run `a` for k steps, save, load into the fresh `b`, then step both to `total`: b must
 * give a's lrs bit for bit (and the state saved again must be the same text). */
static void expect_resume(wk_scheduler *a, wk_scheduler *b, const cJSON *c, int k, int total,
                          const char *what)
{
    for (int i = 0; i < k; i++)
        cr_assert_eq(case_step(a, c, i), 0, "%s: %s", what, wk_last_error());
    char *st = wk_scheduler_state_save(a);
    cr_assert_not_null(st, "%s: %s", what, wk_last_error());
    cr_assert_eq(wk_scheduler_state_load(b, st), 0, "%s k=%d: %s", what, k, wk_last_error());
    char *st2 = wk_scheduler_state_save(b);
    cr_assert_str_eq(st2, st, "%s k=%d: state changed by a round trip", what, k);
    free(st), free(st2);
    cr_assert_eq(wk_scheduler_num_groups(b), wk_scheduler_num_groups(a));
    for (int i = k; i <= total; i++) {
        if (i > k) {
            cr_assert_eq(case_step(a, c, i - 1), 0, "%s: %s", what, wk_last_error());
            cr_assert_eq(case_step(b, c, i - 1), 0, "%s: %s", what, wk_last_error());
        }
        cr_assert_eq(wk_scheduler_steps(b), wk_scheduler_steps(a));
        for (int g = 0; g < wk_scheduler_num_groups(a); g++) {
            double x = wk_scheduler_get_lr(a, g), y = wk_scheduler_get_lr(b, g);
            cr_assert(memcmp(&x, &y, sizeof x) == 0,
                      "%s: saved at %d, lr(%d)[%d] = %.17g resumed, %.17g uninterrupted", what,
                      k, i, g, y, x);
        }
    }
}

Test(scheduler, resume_every_fixture_case)
{
    static const int ks[] = {0, 1, 4, 5, 11, 17, 29, 30};
    int steps = fixture_steps();
    for (const cJSON *c = cases()->child; c; c = c->next) {
        for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
            wk_scheduler *a = make_case(c), *b = make_case(c);
            expect_resume(a, b, c, ks[i], steps, str(c, "name", "?"));
            wk_scheduler_free(a), wk_scheduler_free(b);
        }
        /* into a standalone scheduler with no groups yet: it takes the saved base lrs */
        wk_scheduler *a = make_case(c), *b = build_obj(c, NULL);
        cr_assert_eq(wk_scheduler_num_groups(b), 0);
        expect_resume(a, b, c, 7, steps, str(c, "name", "?"));
        wk_scheduler_free(a), wk_scheduler_free(b);
    }
}

/* nested: warmup around sequential around chained, and warmup around plateau */
static const char *NESTED[] = {
    "{\"type\": \"qWarmupScheduler\", \"args\": {\"warmup_steps\": 6, \"warmup_factor\": 0.2,"
    " \"main\": {\"type\": \"SequentialLR\", \"args\": {\"milestones\": [5, 12], \"schedulers\": ["
    "  {\"type\": \"ChainedScheduler\", \"args\": {\"schedulers\": ["
    "    {\"type\": \"ConstantLR\", \"args\": {\"factor\": 0.5, \"total_iters\": 2}},"
    "    {\"type\": \"ExponentialLR\", \"args\": {\"gamma\": 0.9}}]}},"
    "  {\"type\": \"CosineAnnealingWarmRestarts\", \"args\": {\"T_0\": 3, \"T_mult\": 2}},"
    "  {\"type\": \"OneCycleLR\", \"args\": {\"max_lr\": [0.3, 0.05], \"total_steps\": 40}}]}}}}",
    "{\"type\": \"qWarmupScheduler\", \"args\": {\"warmup_steps\": 4, \"step_on\": \"valid_end\","
    " \"main\": {\"type\": \"ReduceLROnPlateau\", \"args\": {\"patience\": 1, \"factor\": 0.5,"
    " \"cooldown\": 1, \"min_lr\": [0.01, 0.001]}}}}",
    "{\"type\": \"qWarmupScheduler\", \"args\": {\"warmup_epochs\": 2, \"steps_per_epoch\": 3,"
    " \"warmup_factor\": 0, \"step_on\": \"valid_end\","
    " \"main\": {\"type\": \"StepLR\", \"args\": {\"step_size\": 2, \"gamma\": 0.5}}}}",
    "{\"type\": \"ChainedScheduler\", \"args\": {\"schedulers\": ["
    "  {\"type\": \"qWarmupScheduler\", \"args\": {\"warmup_steps\": 5,"
    "   \"main\": {\"type\": \"LambdaLR\", \"args\": {\"fn\": \"inv\"}}}},"
    "  {\"type\": \"MultiStepLR\", \"args\": {\"milestones\": [3, 9], \"gamma\": 0.5}}]}}",
};

/* A driver for qWarmup step_on "valid_end": an evaluation (metric) after every 3rd update. */
static int drive(wk_scheduler *s, int i)
{
    if (wk_scheduler_step(s)) return -1;
    if (wk_scheduler_takes_metric(s) && (i + 1) % 3 == 0) {
        static const double metric[] = {3, 2, 2, 2, 1.5, 1.5, 1.5, 1.5, 1, 1, 1, 1, 1, 1};
        return wk_scheduler_step_metric(s, metric[((i + 1) / 3) % 14]);
    }
    return 0;
}

Test(scheduler, resume_nested)
{
    for (size_t n = 0; n < sizeof NESTED / sizeof NESTED[0]; n++) {
        for (int k = 0; k <= 40; k += 3) {
            wk_scheduler *a = make(NESTED[n]), *b = make(NESTED[n]);
            for (int i = 0; i < k; i++) cr_assert_eq(drive(a, i), 0, "%s", wk_last_error());
            char *st = wk_scheduler_state_save(a);
            cr_assert_eq(wk_scheduler_state_load(b, st), 0, "nested %zu k=%d: %s", n, k,
                         wk_last_error());
            free(st);
            for (int i = k; i < 40; i++) {
                cr_assert_eq(drive(a, i), 0, "%s", wk_last_error());
                cr_assert_eq(drive(b, i), 0, "%s", wk_last_error());
                for (int g = 0; g < 2; g++)
                    cr_assert(wk_scheduler_get_lr(a, g) == wk_scheduler_get_lr(b, g),
                              "nested %zu saved at %d: lr(%d)[%d] %.17g vs %.17g", n, k, i + 1,
                              g, wk_scheduler_get_lr(b, g), wk_scheduler_get_lr(a, g));
            }
            wk_scheduler_free(a), wk_scheduler_free(b);
        }
    }
}

/* the nested schedule itself, by hand: warmup 6 (f 0.2), then the sequential one */
Test(scheduler, nested_values)
{
    wk_scheduler *s = make(NESTED[0]);
    for (int k = 0; k <= 40; k++) {
        if (k) cr_assert_eq(wk_scheduler_step(s), 0, "%s", wk_last_error());
        for (int g = 0; g < 2; g++) {
            double b = BASE[g], e;
            if (k < 6) {
                e = b * (0.2 + 0.8 * k / 6.0);
            } else {
                int j = k - 6; /* the sequential's own step */
                if (j < 5) {
                    e = b * (j < 2 ? 0.5 : 1.0) * pow(0.9, j);
                } else if (j < 12) {
                    int t = j - 5, Ti = 3; /* restarts: 3, then 6 */
                    if (t >= 3) t -= 3, Ti = 6;
                    e = b * (1 + cos(M_PI * t / Ti)) / 2;
                } else {
                    double mx = g ? 0.05 : 0.3, lo = mx / 25, t = j - 12, end0 = 0.3 * 40 - 1;
                    double pct = t <= end0 ? t / end0 : (t - end0) / (39 - end0);
                    e = t <= end0 ? mx + (lo - mx) / 2 * (cos(M_PI * pct) + 1)
                                  : lo / 1e4 + (mx - lo / 1e4) / 2 * (cos(M_PI * pct) + 1);
                }
            }
            cr_assert(close_rel(wk_scheduler_get_lr(s, g), e, 1e-13),
                      "lr(%d)[%d] = %.17g, expected %.17g", k, g, wk_scheduler_get_lr(s, g), e);
        }
    }
    wk_scheduler_free(s);
}

/* ---- qWarmupScheduler against its formula ---- */

static double cos_lr(double b, int64_t j, int64_t T, double eta)
{
    return eta + (b - eta) * (1 + cos(M_PI * (double)j / (double)T)) / 2;
}

/* lr(k) = base (f + (1 - f) k / W) for k < W, then main(k - W) */
static void expect_warmup_cosine(int64_t W, double f, wk_scheduler *s)
{
    for (int64_t k = 0; k <= W + 30; k++) {
        if (k) cr_assert_eq(wk_scheduler_step(s), 0, "%s", wk_last_error());
        for (int g = 0; g < 2; g++) {
            double e = k < W ? BASE[g] * (f + (1 - f) * (double)k / (double)W)
                             : cos_lr(BASE[g], k - (W > 0 ? W : 0), 20, 1e-5);
            cr_assert(close_rel(wk_scheduler_get_lr(s, g), e, 1e-15),
                      "W=%lld f=%g: lr(%lld)[%d] = %.17g, expected %.17g", (long long)W, f,
                      (long long)k, g, wk_scheduler_get_lr(s, g), e);
        }
    }
}

static wk_scheduler *warmup_cos(int64_t W, double f)
{
    wk_qwarmup_opts o = wk_qwarmup_opts_default();
    o.warmup_steps = W, o.warmup_factor = f;
    wk_scheduler *s = wk_qwarmup_new(wk_cosine_lr_new(NULL, 20, 1e-5), &o);
    cr_assert_not_null(s, "%s", wk_last_error());
    cr_assert_eq(wk_scheduler_set_base_lrs(s, BASE, 2), 0, "%s", wk_last_error());
    return s;
}

Test(scheduler, qwarmup_formula)
{
    static const struct { int64_t W; double f; } cfg[] = {
        {10, 0.1}, {10, 0.0}, {1, 0.1}, {7, 0.5}, {3, 1.0}, {0, 0.1}, {-1, 0.1}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        wk_scheduler *s = warmup_cos(cfg[i].W, cfg[i].f);
        expect_warmup_cosine(cfg[i].W, cfg[i].f, s);
        wk_scheduler_free(s);
    }
    /* the documented values: f = 0.1, W = 10 */
    wk_scheduler *s = warmup_cos(10, 0.1);
    cr_assert(close_rel(wk_scheduler_get_lr(s, 0), 0.01, 1e-15)); /* update 1 */
    for (int i = 0; i < 5; i++) wk_scheduler_step(s);
    cr_assert(close_rel(wk_scheduler_get_lr(s, 0), 0.1 * (0.1 + 0.9 * 0.5), 1e-15));
    for (int i = 0; i < 5; i++) wk_scheduler_step(s);
    cr_assert_eq(wk_scheduler_get_lr(s, 0), cos_lr(0.1, 0, 20, 1e-5)); /* k = W: main(0) */
    wk_scheduler_step(s);
    cr_assert_eq(wk_scheduler_get_lr(s, 0), cos_lr(0.1, 1, 20, 1e-5)); /* k = W+1: main(1) */
    wk_scheduler_free(s);
    /* f = 0: the first update runs with lr 0 */
    s = warmup_cos(4, 0);
    cr_assert_eq(wk_scheduler_get_lr(s, 0), 0.0);
    cr_assert_eq(wk_scheduler_get_lr(s, 1), 0.0);
    wk_scheduler_free(s);
}

/* the hand-off is exactly main's step-0 value, even where that is not the base lr */
Test(scheduler, qwarmup_handoff)
{
    wk_qwarmup_opts o = wk_qwarmup_opts_default();
    o.warmup_steps = 4;
    wk_scheduler *s = wk_qwarmup_new(wk_linear_lr_new(NULL, 0.5, 1.0, 4), &o);
    cr_assert_not_null(s, "%s", wk_last_error());
    cr_assert_eq(wk_scheduler_set_base_lrs(s, BASE, 2), 0);
    const double expect[] = {0.1 * 0.1,  0.1 * 0.325, 0.1 * 0.55, 0.1 * 0.775, /* warmup */
                             0.1 * 0.5,  0.1 * 0.625, 0.1 * 0.75, 0.1 * 0.875, 0.1, 0.1};
    for (int k = 0; k < 10; k++) {
        if (k) wk_scheduler_step(s);
        cr_assert(close_rel(wk_scheduler_get_lr(s, 0), expect[k], 1e-15), "lr(%d) = %.17g", k,
                  wk_scheduler_get_lr(s, 0));
    }
    wk_scheduler_free(s);
}

Test(scheduler, qwarmup_epochs)
{
    wk_qwarmup_opts o = wk_qwarmup_opts_default();
    o.warmup_epochs = 2, o.steps_per_epoch = 7, o.warmup_factor = 0.25;
    wk_scheduler *s = wk_qwarmup_new(wk_cosine_lr_new(NULL, 20, 1e-5), &o);
    cr_assert_not_null(s, "%s", wk_last_error());
    cr_assert_eq(wk_scheduler_set_base_lrs(s, BASE, 2), 0);
    expect_warmup_cosine(14, 0.25, s);
    wk_scheduler_free(s);
    o.warmup_epochs = -1; /* disabled, like warmup_steps -1 */
    s = wk_qwarmup_new(wk_cosine_lr_new(NULL, 20, 1e-5), &o);
    cr_assert_not_null(s, "%s", wk_last_error());
    cr_assert_eq(wk_scheduler_set_base_lrs(s, BASE, 2), 0);
    expect_warmup_cosine(0, 0.25, s);
    wk_scheduler_free(s);
}

/* step_on valid_end with ReduceLROnPlateau: warmup counts updates; metrics during the
 * warmup are ignored; afterwards the plateau scheduler gets every metric. */
Test(scheduler, qwarmup_valid_end_plateau)
{
    wk_plateau_opts p = wk_plateau_opts_default();
    p.patience = 1, p.factor = 0.5;
    wk_qwarmup_opts o = wk_qwarmup_opts_default();
    o.warmup_steps = 5, o.step_on = "valid_end";
    wk_scheduler *s = wk_qwarmup_new(wk_plateau_new(NULL, &p), &o);
    cr_assert_not_null(s, "%s", wk_last_error());
    cr_assert_eq(wk_scheduler_set_base_lrs(s, BASE, 2), 0);
    cr_assert(wk_scheduler_takes_metric(s));
    cr_assert_eq(wk_scheduler_unit(s), WK_SCHED_PER_STEP);
    for (int k = 0; k < 5; k++) {
        cr_assert(close_rel(wk_scheduler_get_lr(s, 1), 0.02 * (0.1 + 0.9 * k / 5.0), 1e-15));
        cr_assert_eq(wk_scheduler_step_metric(s, 10.0 + k), 0); /* worse and worse: ignored */
        cr_assert_eq(wk_scheduler_step(s), 0);
    }
    cr_assert_eq(wk_scheduler_get_lr(s, 0), 0.1);
    /* plateau from here: 1.0 best; 1.0, 1.0 bad -> reduce at the second bad one; 0.5 best;
     * 0.6, 0.7 bad -> reduce */
    const double metric[] = {1.0, 1.0, 1.0, 0.5, 0.6, 0.7, 0.8};
    const double lr0[] = {0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025};
    for (int i = 0; i < 7; i++) {
        for (int u = 0; u < 3; u++) cr_assert_eq(wk_scheduler_step(s), 0); /* no change */
        cr_assert_eq(wk_scheduler_step_metric(s, metric[i]), 0, "%s", wk_last_error());
        cr_assert(close_rel(wk_scheduler_get_lr(s, 0), lr0[i], 1e-15), "eval %d: %.17g", i,
                  wk_scheduler_get_lr(s, 0));
        cr_assert(close_rel(wk_scheduler_get_lr(s, 1), lr0[i] / 5, 1e-15));
    }
    cr_assert_eq(wk_scheduler_steps(s), 5 + 21);
    wk_scheduler_free(s);
}

/* step_on valid_end with a plain schedule: main steps once per evaluation after warmup */
Test(scheduler, qwarmup_valid_end_step)
{
    wk_qwarmup_opts o = wk_qwarmup_opts_default();
    o.warmup_steps = 2, o.step_on = "valid_end";
    wk_scheduler *s = wk_qwarmup_new(wk_step_lr_new(NULL, 2, 0.5), &o);
    cr_assert_not_null(s, "%s", wk_last_error());
    cr_assert_eq(wk_scheduler_set_base_lrs(s, BASE, 2), 0);
    cr_assert_eq(wk_scheduler_step_metric(s, 1), 0); /* k = 0 < W: ignored */
    wk_scheduler_step(s), wk_scheduler_step(s);
    cr_assert_eq(wk_scheduler_get_lr(s, 0), 0.1);
    const double e[] = {0.1, 0.05, 0.05, 0.025, 0.025};
    for (int i = 0; i < 5; i++) {
        wk_scheduler_step(s);
        cr_assert_eq(wk_scheduler_step_metric(s, 0), 0);
        cr_assert(close_rel(wk_scheduler_get_lr(s, 0), e[i], 1e-15), "eval %d", i);
    }
    wk_scheduler_free(s);
}

/* ---- writing into an optimizer's groups ---- */

static wk_optimizer *stand_in_optimizer(wki_param_group *groups)
{
    static wk_optimizer opt;
    groups[0] = (wki_param_group){.lr = 0.1, .initial_lr = 0.1};
    groups[1] = (wki_param_group){.lr = 0.02, .initial_lr = 0.02};
    opt = (wk_optimizer){.ngroups = 2, .groups = groups};
    return &opt;
}

Test(scheduler, drives_optimizer_lrs)
{
    wki_param_group groups[2];
    wk_optimizer *opt = stand_in_optimizer(groups);
    wk_qwarmup_opts o = wk_qwarmup_opts_default();
    o.warmup_steps = 3;
    wk_scheduler *s = wk_qwarmup_new(wk_cosine_lr_new(opt, 10, 0), &o);
    cr_assert_not_null(s, "%s", wk_last_error());
    cr_assert_eq(wk_scheduler_num_groups(s), 2);
    for (int k = 0; k < 20; k++) {
        if (k) cr_assert_eq(wk_scheduler_step(s), 0);
        for (int g = 0; g < 2; g++) {
            cr_assert_eq(wk_optimizer_get_lr(opt, g), wk_scheduler_get_lr(s, g));
            cr_assert_eq(wk_optimizer_initial_lr(opt, g), BASE[g]); /* untouched */
        }
    }
    cr_assert(close_rel(wk_optimizer_get_lr(opt, 0), cos_lr(0.1, 16, 10, 0), 1e-15));
    /* a restored scheduler writes its lr at once */
    char *st = wk_scheduler_state_save(s);
    wk_scheduler_free(s);
    wk_optimizer_set_lr(opt, 0, 123), wk_optimizer_set_lr(opt, 1, 123);
    s = wk_qwarmup_new(wk_cosine_lr_new(opt, 10, 0), &o);
    cr_assert(close_rel(wk_optimizer_get_lr(opt, 0), 0.01, 1e-15)); /* construction: lr(0) */
    cr_assert_eq(wk_scheduler_state_load(s, st), 0, "%s", wk_last_error());
    free(st);
    cr_assert(close_rel(wk_optimizer_get_lr(opt, 0), cos_lr(0.1, 16, 10, 0), 1e-15));
    /* an optimizer fixes the group count */
    expect_fail(wk_scheduler_set_base_lrs(s, BASE, 1), "groups");
    wk_scheduler_free(s);
    /* the plateau scheduler reduces the optimizer's lr */
    wk_plateau_opts p = wk_plateau_opts_default();
    p.patience = 0;
    groups[0].lr = 0.1;
    s = wk_plateau_new(opt, &p);
    wk_scheduler_step_metric(s, 1), wk_scheduler_step_metric(s, 1);
    cr_assert(close_rel(wk_optimizer_get_lr(opt, 0), 0.01, 1e-15));
    cr_assert(close_rel(wk_optimizer_get_lr(opt, 1), 0.002, 1e-15));
    wk_scheduler_free(s);
}

/* ---- units ---- */

Test(scheduler, units)
{
    wk_scheduler *s = make("{\"type\": \"StepLR\", \"args\": {\"step_size\": 2}}");
    cr_assert_eq(wk_scheduler_unit(s), WK_SCHED_PER_STEP);
    cr_assert_not(wk_scheduler_takes_metric(s));
    cr_assert_eq(wk_scheduler_set_unit(s, WK_SCHED_PER_EPOCH), 0);
    cr_assert_eq(wk_scheduler_unit(s), WK_SCHED_PER_EPOCH);
    expect_fail(wk_scheduler_set_unit(s, WK_SCHED_PER_EVAL), "unit");
    /* a per-epoch schedule cannot follow a warmup counted in updates */
    wk_qwarmup_opts o = wk_qwarmup_opts_default();
    o.warmup_steps = 3;
    expect_error(wk_qwarmup_new(s, &o), "main: StepLR steps per epoch");
    /* ... but can be stepped per evaluation */
    s = make("{\"type\": \"StepLR\", \"args\": {\"step_size\": 2}}");
    wk_scheduler_set_unit(s, WK_SCHED_PER_EPOCH);
    o.step_on = "valid_end";
    s = wk_qwarmup_new(s, &o);
    cr_assert_not_null(s, "%s", wk_last_error());
    expect_fail(wk_scheduler_set_unit(s, WK_SCHED_PER_EPOCH), "qWarmupScheduler");
    wk_scheduler_free(s);

    s = make("{\"type\": \"ReduceLROnPlateau\", \"args\": {}}");
    cr_assert_eq(wk_scheduler_unit(s), WK_SCHED_PER_EVAL);
    cr_assert(wk_scheduler_takes_metric(s));
    expect_fail(wk_scheduler_set_unit(s, WK_SCHED_PER_STEP), "ReduceLROnPlateau");
    wk_scheduler_free(s);

    /* containers: all members alike; set_unit reaches them */
    wk_scheduler *m[2] = {wk_step_lr_new(NULL, 2, 0.5), wk_exponential_lr_new(NULL, 0.9)};
    s = wk_sequential_lr_new(m, 2, (const int64_t[]){3}, 1);
    cr_assert_eq(wk_scheduler_set_unit(s, WK_SCHED_PER_EPOCH), 0);
    cr_assert_eq(wk_scheduler_unit(s), WK_SCHED_PER_EPOCH);
    wk_scheduler_free(s);
    m[0] = wk_step_lr_new(NULL, 2, 0.5), m[1] = wk_exponential_lr_new(NULL, 0.9);
    wk_scheduler_set_unit(m[1], WK_SCHED_PER_EPOCH);
    expect_error(wk_chained_lr_new(m, 2), "schedulers[1] (ExponentialLR) steps per epoch");
}

/* ---- the lr of every type at a few points, by hand (independent of torch) ---- */

Test(scheduler, hand_values)
{
    wk_scheduler *s = make("{\"type\": \"MultiStepLR\","
                           " \"args\": {\"milestones\": [4, 2, 4], \"gamma\": 0.5}}");
    const double e[] = {0.1, 0.1, 0.05, 0.05, 0.0125, 0.0125};
    for (int k = 0; k < 6; k++) {
        if (k) wk_scheduler_step(s);
        cr_assert(close_rel(wk_scheduler_get_lr(s, 0), e[k], 1e-15), "lr(%d)", k);
    }
    wk_scheduler_free(s);
    /* OneCycle: starts at max/div, peaks at max at step pct*T - 1, ends at max/div/final */
    s = make("{\"type\": \"OneCycleLR\", \"args\": {\"max_lr\": 1.0, \"total_steps\": 11,"
             " \"pct_start\": 0.5, \"anneal_strategy\": \"linear\", \"div_factor\": 4,"
             " \"final_div_factor\": 5}}");
    cr_assert_eq(wk_scheduler_get_lr(s, 0), 0.25);
    cr_assert_eq(wk_scheduler_get_lr(s, 1), 0.25); /* max_lr for every group */
    for (int k = 1; k <= 10; k++) wk_scheduler_step(s);
    cr_assert(close_rel(wk_scheduler_get_lr(s, 0), 0.05, 1e-15));
    wk_scheduler_step(s); /* k = total_steps is still allowed (torch) */
    expect_fail(wk_scheduler_step(s), "total_steps is 11");
    cr_assert_eq(wk_scheduler_steps(s), 11);
    wk_scheduler_free(s);
    /* warm restarts with T_mult 2: periods 2, 4, 8 */
    s = make("{\"type\": \"CosineAnnealingWarmRestarts\", \"args\": {\"T_0\": 2, \"T_mult\": 2}}");
    const int tcur[] = {0, 1, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 0};
    const int ti[] = {2, 2, 4, 4, 4, 4, 8, 8, 8, 8, 8, 8, 8, 8, 16};
    for (int k = 0; k < 15; k++) {
        if (k) wk_scheduler_step(s);
        cr_assert(close_rel(wk_scheduler_get_lr(s, 0), cos_lr(0.1, tcur[k], ti[k], 0), 1e-15),
                  "lr(%d)", k);
    }
    wk_scheduler_free(s);
    /* chained: the product of the factors */
    s = make("{\"type\": \"ChainedScheduler\", \"args\": {\"schedulers\": ["
             "{\"type\": \"StepLR\", \"args\": {\"step_size\": 2, \"gamma\": 0.5}},"
             "{\"type\": \"LinearLR\", \"args\": {\"start_factor\": 0.25, \"total_iters\": 3}}]}}");
    const double f2[] = {0.25, 0.5, 0.75, 1, 1, 1};
    for (int k = 0; k < 6; k++) {
        if (k) wk_scheduler_step(s);
        cr_assert(close_rel(wk_scheduler_get_lr(s, 1), 0.02 * pow(0.5, k / 2) * f2[k], 1e-15));
    }
    wk_scheduler_free(s);
}

/* ---- errors ---- */

static double nan_after_3(int64_t k, void *u)
{
    (void)u;
    return k > 3 ? NAN : 1.0;
}

Test(scheduler, errors_options)
{
    expect_error(wk_step_lr_new(NULL, 0, 0.1), "StepLR: step_size must be >= 1, got 0");
    expect_error(wk_step_lr_new(NULL, -3, 0.1), "step_size");
    expect_error(wk_step_lr_new(NULL, 3, -0.1), "StepLR: gamma");
    expect_error(wk_multistep_lr_new(NULL, (const int64_t[]){3, -1}, 2, 0.1),
                 "MultiStepLR: milestones[1] is -1");
    expect_error(wk_multistep_lr_new(NULL, NULL, 2, 0.1), "milestones");
    expect_error(wk_exponential_lr_new(NULL, NAN), "ExponentialLR: gamma");
    expect_error(wk_cosine_lr_new(NULL, 0, 0), "CosineAnnealingLR: T_max must be >= 1");
    expect_error(wk_cosine_lr_new(NULL, 10, -1), "eta_min");
    expect_error(wk_linear_lr_new(NULL, 1.5, 1, 5), "LinearLR: start_factor");
    expect_error(wk_linear_lr_new(NULL, 0.5, -1, 5), "end_factor");
    expect_error(wk_linear_lr_new(NULL, 0.5, 1, 0), "total_iters");
    expect_error(wk_constant_lr_new(NULL, 0.5, -1), "ConstantLR: total_iters must be >= 0");
    expect_error(wk_constant_lr_new(NULL, 2, 1), "factor");
    expect_error(wk_polynomial_lr_new(NULL, -5, 1), "PolynomialLR: total_iters");
    expect_error(wk_polynomial_lr_new(NULL, 5, -1), "power");
    expect_error(wk_cosine_restarts_lr_new(NULL, 0, 1, 0), "T_0 must be >= 1");
    expect_error(wk_cosine_restarts_lr_new(NULL, 3, 0, 0), "T_mult must be >= 1");
    expect_error(wk_lambda_lr_new(NULL, NULL, NULL), "LambdaLR: lr_lambda is NULL");

    wk_onecycle_opts c = wk_onecycle_opts_default();
    c.max_lr = 0.1;
    expect_error(wk_onecycle_lr_new(NULL, &c), "OneCycleLR: total_steps");
    c.total_steps = -4;
    expect_error(wk_onecycle_lr_new(NULL, &c), "total_steps must be >= 1");
    c.total_steps = 10, c.pct_start = 1.5;
    expect_error(wk_onecycle_lr_new(NULL, &c), "pct_start");
    c.pct_start = 0.3, c.anneal_strategy = "cosine";
    expect_error(wk_onecycle_lr_new(NULL, &c), "anneal_strategy: unknown value \"cosine\"");
    c.anneal_strategy = "cos", c.max_lr = 0;
    expect_error(wk_onecycle_lr_new(NULL, &c), "max_lr");
    c.max_lr = 0.1, c.pct_start = 0.1; /* phase 1 ends at step 0: torch divides by zero too */
    expect_error(wk_onecycle_lr_new(NULL, &c), "phase 1 is empty");
    c.pct_start = 0.3, c.max_lrs = (const double[]){1, 2, 3}, c.n_max_lrs = 3;
    wk_scheduler *s = wk_onecycle_lr_new(NULL, &c);
    cr_assert_not_null(s);
    expect_fail(wk_scheduler_set_base_lrs(s, BASE, 2), "max_lr has 3 values but there are 2");
    wk_scheduler_free(s);

    wk_plateau_opts p = wk_plateau_opts_default();
    p.mode = "avg";
    expect_error(wk_plateau_new(NULL, &p), "ReduceLROnPlateau: mode: unknown value \"avg\"");
    p = wk_plateau_opts_default(), p.threshold_mode = "pct";
    expect_error(wk_plateau_new(NULL, &p), "threshold_mode");
    p = wk_plateau_opts_default(), p.factor = 1.0;
    expect_error(wk_plateau_new(NULL, &p), "factor must be in [0, 1)");
    p = wk_plateau_opts_default(), p.patience = -1;
    expect_error(wk_plateau_new(NULL, &p), "patience must be >= 0");
    p = wk_plateau_opts_default(), p.cooldown = -2;
    expect_error(wk_plateau_new(NULL, &p), "cooldown");
    p = wk_plateau_opts_default(), p.threshold = -1e-4;
    expect_error(wk_plateau_new(NULL, &p), "threshold");
    p = wk_plateau_opts_default(), p.min_lr = -1;
    expect_error(wk_plateau_new(NULL, &p), "min_lr");
    p = wk_plateau_opts_default(), p.min_lrs = (const double[]){0, 0, 0}, p.n_min_lrs = 3;
    s = wk_plateau_new(NULL, &p);
    expect_fail(wk_scheduler_set_base_lrs(s, BASE, 2), "min_lr has 3 values");
    wk_scheduler_free(s);
    expect_error(wk_plateau_new(NULL, NULL), "wk_plateau_opts_default");
}

Test(scheduler, errors_qwarmup)
{
    wk_qwarmup_opts o = wk_qwarmup_opts_default();
    o.warmup_steps = 5;
    expect_error(wk_qwarmup_new(wk_plateau_new(NULL, &(wk_plateau_opts){.factor = 0.1}), &o),
                 "qWarmupScheduler: step_on: the main scheduler (ReduceLROnPlateau) steps on a "
                 "validation metric; use step_on \"valid_end\"");
    o.step_on = "epoch_end";
    expect_error(wk_qwarmup_new(wk_step_lr_new(NULL, 2, 0.1), &o),
                 "step_on: unknown value \"epoch_end\"");
    o = wk_qwarmup_opts_default(), o.warmup_steps = -2;
    expect_error(wk_qwarmup_new(wk_step_lr_new(NULL, 2, 0.1), &o), "warmup_steps must be >= 0");
    o = wk_qwarmup_opts_default(), o.warmup_epochs = -3;
    expect_error(wk_qwarmup_new(wk_step_lr_new(NULL, 2, 0.1), &o), "warmup_epochs");
    o = wk_qwarmup_opts_default(), o.warmup_steps = 3, o.warmup_epochs = 1, o.steps_per_epoch = 2;
    expect_error(wk_qwarmup_new(wk_step_lr_new(NULL, 2, 0.1), &o), "not both");
    o = wk_qwarmup_opts_default(), o.warmup_epochs = 1;
    expect_error(wk_qwarmup_new(wk_step_lr_new(NULL, 2, 0.1), &o), "steps_per_epoch must be >= 1");
    o = wk_qwarmup_opts_default(), o.warmup_factor = 1.5;
    expect_error(wk_qwarmup_new(wk_step_lr_new(NULL, 2, 0.1), &o), "warmup_factor");
    o.warmup_factor = -0.1;
    expect_error(wk_qwarmup_new(wk_step_lr_new(NULL, 2, 0.1), &o), "warmup_factor");
    expect_error(wk_qwarmup_new(wk_step_lr_new(NULL, 2, 0.1), NULL), "options are NULL");
    /* a failed main keeps its own message */
    o = wk_qwarmup_opts_default();
    expect_error(wk_qwarmup_new(wk_step_lr_new(NULL, 0, 0.1), &o), "StepLR: step_size");
    /* step_metric on an optimizer_step warmup */
    wk_scheduler *s = wk_qwarmup_new(wk_step_lr_new(NULL, 2, 0.1), &o);
    expect_fail(wk_scheduler_step_metric(s, 1.0), "step_on is \"optimizer_step\"");
    wk_scheduler_free(s);
}

Test(scheduler, errors_containers)
{
    wk_scheduler *m[3];
    m[0] = wk_step_lr_new(NULL, 2, 0.1), m[1] = wk_step_lr_new(NULL, 3, 0.1);
    expect_error(wk_sequential_lr_new(m, 2, (const int64_t[]){3, 4}, 2),
                 "SequentialLR: milestones needs one milestone fewer");
    m[0] = wk_step_lr_new(NULL, 2, 0.1), m[1] = wk_step_lr_new(NULL, 3, 0.1);
    m[2] = wk_step_lr_new(NULL, 3, 0.1);
    expect_error(wk_sequential_lr_new(m, 3, (const int64_t[]){4, 4}, 2), "strictly increasing");
    m[0] = wk_step_lr_new(NULL, 2, 0.1), m[1] = wk_step_lr_new(NULL, 3, 0.1);
    expect_error(wk_sequential_lr_new(m, 2, (const int64_t[]){0}, 1), "must be >= 1");
    m[0] = wk_step_lr_new(NULL, 2, 0.1);
    m[1] = wk_plateau_new(NULL, &(wk_plateau_opts){.factor = 0.1});
    expect_error(wk_sequential_lr_new(m, 2, (const int64_t[]){3}, 1),
                 "schedulers[1] is a ReduceLROnPlateau, which steps on a validation metric");
    m[0] = wk_step_lr_new(NULL, 2, 0.1);
    m[1] = m[0];
    expect_error(wk_chained_lr_new(m, 2), "are the same scheduler");
    m[0] = wk_step_lr_new(NULL, 2, 0.1), m[1] = NULL;
    wk_clear_error();
    cr_assert_null(wk_chained_lr_new(m, 2));
    cr_assert(strstr(wk_last_error(), "schedulers[1] is NULL"), "%s", wk_last_error());
    wk_onecycle_opts c = wk_onecycle_opts_default();
    c.max_lr = 0.1, c.total_steps = 10;
    m[0] = wk_step_lr_new(NULL, 2, 0.1), m[1] = wk_onecycle_lr_new(NULL, &c);
    expect_error(wk_chained_lr_new(m, 2), "not chainable");
    expect_error(wk_chained_lr_new(NULL, 0), "needs at least one scheduler");
    /* group counts must agree */
    m[0] = wk_step_lr_new(NULL, 2, 0.1), m[1] = wk_step_lr_new(NULL, 3, 0.1);
    wk_scheduler_set_base_lrs(m[1], BASE, 2);
    expect_error(wk_chained_lr_new(m, 2), "another group count");
    /* a member of one container cannot join another */
    m[0] = wk_step_lr_new(NULL, 2, 0.1);
    wk_scheduler *s = wk_chained_lr_new(m, 1);
    cr_assert_not_null(s);
    expect_error(wk_chained_lr_new(m, 1), "already belongs to another scheduler");
    /* ... and moves only with it */
    expect_fail(wk_scheduler_step(m[0]), "this StepLR belongs to another scheduler");
    expect_fail(wk_scheduler_set_base_lrs(m[0], BASE, 2), "belongs to another");
    expect_fail(wk_scheduler_state_load(m[0], "{}"), "belongs to another");
    wk_scheduler_free(m[0]); /* does nothing: s frees it */
    cr_assert_eq(wk_scheduler_step(s), 0);
    cr_assert_eq(wk_scheduler_steps(m[0]), 1);
    wk_scheduler_free(s);
}

Test(scheduler, errors_use)
{
    wk_scheduler *s = make("{\"type\": \"StepLR\", \"args\": {\"step_size\": 2}}");
    expect_fail(wk_scheduler_step_metric(s, 1.0), "StepLR: takes no metric");
    cr_assert(isnan(wk_scheduler_get_lr(s, 2)));
    cr_assert(strstr(wk_last_error(), "group 2 is out of range (2 groups"), "%s", wk_last_error());
    cr_assert(isnan(wk_scheduler_get_lr(s, -1)));
    expect_fail(wk_scheduler_set_base_lrs(s, (const double[]){0.1, -1}, 2), "group 1 is -1");
    expect_fail(wk_scheduler_set_base_lrs(s, BASE, 0), "at least one base lr");
    wk_scheduler_step(s);
    expect_fail(wk_scheduler_set_base_lrs(s, BASE, 2), "before the first step");
    wk_scheduler_free(s);

    s = make("{\"type\": \"ReduceLROnPlateau\", \"args\": {}}");
    expect_fail(wk_scheduler_step(s), "ReduceLROnPlateau: needs a metric");
    cr_assert_eq(wk_scheduler_steps(s), 0);
    wk_scheduler_free(s);

    /* standalone with no base lrs: steps work, lrs are not there */
    s = wk_cosine_lr_new(NULL, 10, 0);
    cr_assert_eq(wk_scheduler_num_groups(s), 0);
    cr_assert_eq(wk_scheduler_step(s), 0);
    cr_assert(isnan(wk_scheduler_get_lr(s, 0)));
    cr_assert(strstr(wk_last_error(), "wk_scheduler_set_base_lrs"), "%s", wk_last_error());
    wk_scheduler_free(s);

    /* a failing lambda changes nothing */
    s = wk_lambda_lr_new(NULL, nan_after_3, NULL);
    wk_scheduler_set_base_lrs(s, BASE, 2);
    for (int i = 0; i < 3; i++) cr_assert_eq(wk_scheduler_step(s), 0);
    expect_fail(wk_scheduler_step(s), "LambdaLR: lr_lambda returned nan at step 4");
    cr_assert_eq(wk_scheduler_steps(s), 3);
    cr_assert_eq(wk_scheduler_get_lr(s, 0), 0.1);
    wk_scheduler_free(s);

    expect_fail(wk_scheduler_step(NULL), "scheduler is NULL");
    expect_error(wk_scheduler_state_save(NULL), "scheduler is NULL");
    wk_scheduler_free(NULL);
}

Test(scheduler, errors_state_load)
{
    wk_scheduler *s = make(NESTED[1]), *t = make(NESTED[1]);
    for (int i = 0; i < 12; i++) drive(s, i);
    char *st = wk_scheduler_state_save(s);
    cr_assert_not_null(st);
    char *before = wk_scheduler_state_save(t);
    expect_fail(wk_scheduler_state_load(t, "{not json"), "not valid JSON");
    expect_fail(wk_scheduler_state_load(t, NULL), "not valid JSON");
    expect_fail(wk_scheduler_state_load(t, "[1]"), "not a JSON object");
    wk_scheduler *c = make("{\"type\": \"CosineAnnealingLR\", \"args\": {\"T_max\": 5}}");
    expect_fail(wk_scheduler_state_load(c, st), "the state is of a qWarmupScheduler, not of a "
                                                "CosineAnnealingLR");
    wk_scheduler_free(c);
    /* damage the nested plateau state: nothing may change, not even the outer steps */
    cJSON *o = cJSON_Parse(st);
    cJSON *inner = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "schedulers"), 0);
    cJSON_ReplaceItemInObject(inner, "num_bad_epochs", cJSON_CreateNumber(-1));
    char *bad = cJSON_PrintUnformatted(o);
    expect_fail(wk_scheduler_state_load(t, bad), "num_bad_epochs");
    free(bad);
    char *after = wk_scheduler_state_save(t);
    cr_assert_str_eq(after, before);
    free(after);
    cJSON_ReplaceItemInObject(inner, "num_bad_epochs", cJSON_CreateNumber(0));
    cJSON_ReplaceItemInObject(o, "base_lrs", cJSON_CreateDoubleArray((const double[]){1}, 1));
    bad = cJSON_PrintUnformatted(o);
    expect_fail(wk_scheduler_state_load(t, bad), "\"base_lrs\" has 1 groups, the scheduler 2");
    free(bad);
    cJSON_ReplaceItemInObject(o, "base_lrs", cJSON_CreateDoubleArray(BASE, 2));
    cJSON_ReplaceItemInObject(o, "steps", cJSON_CreateNumber(1.5));
    bad = cJSON_PrintUnformatted(o);
    expect_fail(wk_scheduler_state_load(t, bad), "\"steps\" must be an integer");
    free(bad);
    cJSON_ReplaceItemInObject(o, "steps", cJSON_CreateNumber(12));
    cJSON_DeleteItemFromObject(o, "schedulers");
    bad = cJSON_PrintUnformatted(o);
    expect_fail(wk_scheduler_state_load(t, bad), "\"schedulers\" must hold the states");
    free(bad);
    cJSON_Delete(o);
    after = wk_scheduler_state_save(t);
    cr_assert_str_eq(after, before);
    free(after), free(before);
    /* and the intact one loads; the plateau's best (+inf before any metric) survives too */
    cr_assert_eq(wk_scheduler_state_load(t, st), 0, "%s", wk_last_error());
    free(st);
    wk_scheduler *u = make(NESTED[1]);
    st = wk_scheduler_state_save(u);
    cr_assert(strstr(st, "\"best\":\"inf\""), "%s", st);
    cr_assert_eq(wk_scheduler_state_load(t, st), 0, "%s", wk_last_error());
    free(st);
    wk_scheduler_free(s), wk_scheduler_free(t), wk_scheduler_free(u);
}

/* ---- a real AdamW driven by qWarmupScheduler(CosineAnnealingLR) ---- */

enum { RUN_N = 7, RUN_STEPS = 30, RUN_W = 5, RUN_T = 20 };
#define RUN_BASE 0.05
#define RUN_F 0.1
#define RUN_ETA 1e-4

/* lr of update k + 1 (after k updates): warmup, then the cosine counting from 0 */
static double run_lr(int64_t k)
{
    return k < RUN_W ? RUN_BASE * (RUN_F + (1 - RUN_F) * (double)k / RUN_W)
                     : cos_lr(RUN_BASE, k - RUN_W, RUN_T, RUN_ETA);
}

static wk_scheduler *run_sched(wk_optimizer *opt)
{
    wk_qwarmup_opts o = wk_qwarmup_opts_default();
    o.warmup_steps = RUN_W, o.warmup_factor = RUN_F;
    wk_scheduler *s = wk_qwarmup_new(wk_cosine_lr_new(opt, RUN_T, RUN_ETA), &o);
    cr_assert_not_null(s, "%s", wk_last_error());
    return s;
}

static wk_optimizer *run_opt(wk_tensor *w)
{
    wk_optimizer *o =
        wk_adamw_new(&w, 1, WK_HPARAMS({"lr", RUN_BASE}, {"weight_decay", 0.05}));
    cr_assert_not_null(o, "%s", wk_last_error());
    return o;
}

/* update k + 1: loss = mse(w * x_k, y) through autograd, AdamW step, scheduler step */
static void run_update(wk_tensor *w, wk_optimizer *opt, wk_scheduler *s, int k)
{
    wk_frame_begin();
    wk_tensor *x = wk_empty(WK_SHAPE(RUN_N), WK_DTYPE_F32);
    wk_tensor *y = wk_empty(WK_SHAPE(RUN_N), WK_DTYPE_F32);
    for (int i = 0; i < RUN_N; i++) {
        ((float *)wk_data(x))[i] = (float)(1 + 0.5 * sin(0.3 * k + i));
        ((float *)wk_data(y))[i] = (float)cos(0.9 * i);
    }
    cr_assert_eq(wk_backward(wk_mse_loss(wk_mul(w, x), y, WK_REDUCTION_MEAN)), 0, "%s",
                 wk_last_error());
    wk_frame_end();
    cr_assert_eq(wk_optimizer_step(opt), 0, "%s", wk_last_error());
    wk_optimizer_zero_grad(opt);
    cr_assert_eq(wk_scheduler_step(s), 0, "%s", wk_last_error());
}

static wk_tensor *run_param(void)
{
    wk_tensor *w = wk_empty(WK_SHAPE(RUN_N), WK_DTYPE_F32);
    for (int i = 0; i < RUN_N; i++) ((float *)wk_data(w))[i] = (float)sin(1.0 + i);
    while (w->frame) wk_keep(w); /* persistent, freed by the test */
    return wk_requires_grad_(w, true);
}

Test(scheduler, qwarmup_cosine_drives_adamw)
{
    wk_tensor *w = run_param();
    wk_optimizer *opt = run_opt(w);
    wk_scheduler *s = run_sched(opt);
    float start[RUN_N];
    memcpy(start, wk_data(w), sizeof start);
    for (int k = 0; k < RUN_STEPS; k++) {
        double lr = wk_optimizer_get_lr(opt, 0);
        cr_assert(close_rel(lr, run_lr(k), 1e-15), "update %d: optimizer lr %.17g, expected %.17g",
                  k + 1, lr, run_lr(k));
        cr_assert_eq(wk_scheduler_get_lr(s, 0), lr);
        cr_assert_eq(wk_optimizer_initial_lr(opt, 0), RUN_BASE, "initial_lr stays the base");
        run_update(w, opt, s, k);
    }
    cr_assert_eq(wk_optimizer_step_count(opt), RUN_STEPS);
    cr_assert_eq(wk_scheduler_steps(s), RUN_STEPS);
    cr_assert(memcmp(start, wk_data(w), sizeof start) != 0, "the parameter moved");
    wk_scheduler_free(s);
    wk_optimizer_free(opt);
    wk_tensor_free(w);
}

/* save optimizer + scheduler after k updates, load into fresh ones over a copy of the
 * parameter, continue: parameters and lrs bit-identical to the uninterrupted run */
Test(scheduler, qwarmup_adamw_state_round_trip_is_bit_identical)
{
    float ref_w[RUN_STEPS][RUN_N];
    double ref_lr[RUN_STEPS];
    wk_tensor *w = run_param();
    wk_optimizer *opt = run_opt(w);
    wk_scheduler *s = run_sched(opt);
    for (int k = 0; k < RUN_STEPS; k++) {
        ref_lr[k] = wk_optimizer_get_lr(opt, 0);
        run_update(w, opt, s, k);
        memcpy(ref_w[k], wk_data(w), sizeof ref_w[k]);
    }
    wk_scheduler_free(s);
    wk_optimizer_free(opt);
    wk_tensor_free(w);

    char path[] = "/tmp/wick_sched_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    const int cuts[] = {3, RUN_W, 12};  /* inside the warmup, at the hand-off, in the cosine */
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        int cut = cuts[c];
        w = run_param();
        opt = run_opt(w);
        s = run_sched(opt);
        for (int k = 0; k < cut; k++) run_update(w, opt, s, k);
        cr_assert_eq(wk_optimizer_save(opt, path), 0, "%s", wk_last_error());
        char *json = wk_scheduler_state_save(s);
        cr_assert_not_null(json, "%s", wk_last_error());
        wk_tensor *w2 = run_param(); /* fresh objects: start values, then the saved ones */
        memcpy(wk_data(w2), wk_data(w), RUN_N * sizeof(float));
        wk_scheduler_free(s);
        wk_optimizer_free(opt);
        wk_tensor_free(w);

        wk_optimizer *opt2 = run_opt(w2);
        wk_scheduler *s2 = run_sched(opt2);
        cr_assert_eq(wk_optimizer_load(opt2, path), 0, "%s", wk_last_error());
        cr_assert_eq(wk_scheduler_state_load(s2, json), 0, "%s", wk_last_error());
        free(json);
        cr_assert_eq(wk_optimizer_step_count(opt2), cut);
        cr_assert_eq(wk_scheduler_steps(s2), cut);
        for (int k = cut; k < RUN_STEPS; k++) {
            cr_assert_eq(wk_optimizer_get_lr(opt2, 0), ref_lr[k], "cut %d, update %d: lr", cut,
                         k + 1);
            run_update(w2, opt2, s2, k);
            cr_assert(memcmp(wk_data(w2), ref_w[k], sizeof ref_w[k]) == 0,
                      "cut %d, update %d: parameters differ from the uninterrupted run", cut,
                      k + 1);
        }
        wk_scheduler_free(s2);
        wk_optimizer_free(opt2);
        wk_tensor_free(w2);
    }
    unlink(path);
}
