/* Scaled dot-product attention, its packed multi-head form and the attention modules:
 * values and gradients against PyTorch, against a naive double-precision reference at
 * larger sizes, finite-difference gradient checks, layouts, modules and errors. */
#include "test_util.h"

TestSuite(attention, .init = tu_setup, .fini = tu_teardown);

/* ---- inputs ---- */

/* The formula of the PyTorch references: ((i*i*a + i*b + 3) % 31) / 10 - 1.5. */
static double fq(int64_t i, int a, int b)
{
    return (double)((i * i * a + i * b + 3) % 31) / 10.0 - 1.5;
}

static wk_tensor *fill(const int64_t *shape, int nd, wk_dtype dt, int a, int b, double scale)
{
    wk_tensor *t = wk_empty(shape, nd, WK_DTYPE_F64);
    double *p = wk_data(t);
    for (int64_t i = 0; i < wk_numel(t); i++) p[i] = fq(i, a, b) * scale;
    return dt == WK_DTYPE_F64 ? t : wk_to_dtype(t, dt);
}

static uint64_t rng_state;
static double urand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static wk_tensor *rand_t(const int64_t *shape, int nd, wk_dtype dt, uint64_t seed, double lo,
                         double hi)
{
    rng_state = seed;
    wk_tensor *t = wk_empty(shape, nd, WK_DTYPE_F64);
    double *p = wk_data(t);
    for (int64_t i = 0; i < wk_numel(t); i++) p[i] = lo + (hi - lo) * urand();
    return dt == WK_DTYPE_F64 ? t : wk_to_dtype(t, dt);
}

/* The same values laid out with the last two dims transposed in memory. */
static wk_tensor *swapped_copy(wk_tensor *t)
{
    int nd = t->ndim;
    wk_tensor *base = wk_empty(t->shape, nd, t->dtype);
    wk_tensor *v = wk_transpose(wk_contiguous(wk_transpose(base, nd - 2, nd - 1)), nd - 2,
                                nd - 1);
    cr_assert_not_null(wk_copy_(v, t));
    return v;
}

static double *as_doubles(wk_tensor *t) /* contiguous float64 data (frame-owned) */
{
    return wk_data(wk_contiguous(wk_to_dtype(wk_contiguous(t), WK_DTYPE_F64)));
}

static void expect_same_bits(const wk_tensor *a, const wk_tensor *b, const char *what)
{
    cr_assert_not_null(a, "%s: %s", what, wk_last_error());
    cr_assert_not_null(b, "%s: %s", what, wk_last_error());
    cr_assert(!memcmp(wk_data(a), wk_data(b), (size_t)wk_numel(a) * wk_dtype_size(a->dtype)),
              "%s: results differ between two runs", what);
}

static void expect_near(const wk_tensor *t, const double *ref, double rtol, double atol,
                        const char *what)
{
    tu_expect_values(t, ref, wk_numel(t), rtol, atol, what);
}

/* ---- the naive reference ---- */

typedef struct {
    int64_t nb, Tq, Tk, D, Dv;
    const double *q, *k, *v;     /* (nb, Tq, D), (nb, Tk, D), (nb, Tk, Dv) */
    const double *add;           /* (nb, Tq, Tk) added to the scores, or NULL */
    const uint8_t *keep;         /* (nb, Tq, Tk) bool mask (1 = attend), or NULL */
    bool causal;
    const uint8_t *drop;         /* (nb, Tq, Tk) dropout mask, or NULL */
    double p;
    const double *dO;            /* (nb, Tq, Dv), or NULL: no backward */
} naive_in;

/* o (nb, Tq, Dv); with dO also dq, dk, dv and dS (the additive mask's gradient). */
static void naive_attention(const naive_in *in, double *o, double *dq, double *dk, double *dv,
                            double *ds)
{
    int64_t Tq = in->Tq, Tk = in->Tk, D = in->D, Dv = in->Dv;
    double scale = 1 / sqrt((double)D);
    double *P = malloc(sizeof(double) * (size_t)(Tq * Tk));
    double *W = malloc(sizeof(double) * (size_t)(Tq * Tk));
    for (int64_t b = 0; b < in->nb; b++) {
        const double *q = in->q + b * Tq * D, *k = in->k + b * Tk * D, *v = in->v + b * Tk * Dv;
        for (int64_t i = 0; i < Tq; i++) {
            double mx = -INFINITY;
            for (int64_t j = 0; j < Tk; j++) {
                long double s = 0;
                for (int64_t d = 0; d < D; d++) s += (long double)q[i * D + d] * k[j * D + d];
                double sv = (double)s * scale;
                int64_t e = (b * Tq + i) * Tk + j;
                if (in->add) sv += in->add[e];
                if ((in->keep && !in->keep[e]) || (in->causal && j > i)) sv = -INFINITY;
                P[i * Tk + j] = sv;
                if (sv > mx) mx = sv;
            }
            long double sum = 0;
            for (int64_t j = 0; j < Tk; j++) sum += exp(P[i * Tk + j] - mx);
            for (int64_t j = 0; j < Tk; j++) P[i * Tk + j] = exp(P[i * Tk + j] - mx) / (double)sum;
        }
        /* Pd = P * drop / (1 - p) in W */
        for (int64_t e = 0; e < Tq * Tk; e++)
            W[e] = in->drop ? P[e] * in->drop[b * Tq * Tk + e] / (1 - in->p) : P[e];
        for (int64_t i = 0; i < Tq; i++)
            for (int64_t c = 0; c < Dv; c++) {
                long double s = 0;
                for (int64_t j = 0; j < Tk; j++) s += (long double)W[i * Tk + j] * v[j * Dv + c];
                o[(b * Tq + i) * Dv + c] = (double)s;
            }
        if (!in->dO) continue;
        const double *g = in->dO + b * Tq * Dv;
        for (int64_t j = 0; j < Tk; j++)
            for (int64_t c = 0; c < Dv; c++) {
                long double s = 0;
                for (int64_t i = 0; i < Tq; i++) s += (long double)W[i * Tk + j] * g[i * Dv + c];
                dv[(b * Tk + j) * Dv + c] = (double)s;
            }
        double *S = ds + b * Tq * Tk;
        for (int64_t i = 0; i < Tq; i++) {
            long double r = 0;
            for (int64_t j = 0; j < Tk; j++) {
                long double s = 0;
                for (int64_t c = 0; c < Dv; c++) s += (long double)g[i * Dv + c] * v[j * Dv + c];
                double dp = (double)s;
                if (in->drop) dp *= in->drop[(b * Tq + i) * Tk + j] / (1 - in->p);
                S[i * Tk + j] = dp;
                r += (long double)dp * P[i * Tk + j];
            }
            for (int64_t j = 0; j < Tk; j++)
                S[i * Tk + j] = P[i * Tk + j] * (S[i * Tk + j] - (double)r);
        }
        for (int64_t i = 0; i < Tq; i++)
            for (int64_t d = 0; d < D; d++) {
                long double s = 0;
                for (int64_t j = 0; j < Tk; j++) s += (long double)S[i * Tk + j] * k[j * D + d];
                dq[(b * Tq + i) * D + d] = (double)s * scale;
            }
        for (int64_t j = 0; j < Tk; j++)
            for (int64_t d = 0; d < D; d++) {
                long double s = 0;
                for (int64_t i = 0; i < Tq; i++) s += (long double)S[i * Tk + j] * q[i * D + d];
                dk[(b * Tk + j) * D + d] = (double)s * scale;
            }
    }
    free(P);
    free(W);
}

/* ---- gradient checks (as in test_norm.c) ---- */

typedef wk_tensor *(*gc_fn)(wk_tensor *const *in, int n, void *user);

static double weighted_sum(gc_fn fn, void *user, wk_tensor *const *in, int n,
                           const wk_tensor *w)
{
    wk_frame_begin();
    wk_tensor *y = fn(in, n, user);
    cr_assert_not_null(y, "gradcheck: %s", wk_last_error());
    double s = 0;
    for (int64_t i = 0; i < wk_numel(y); i++) s += tu_at(y, i) * ((const double *)wk_data(w))[i];
    wk_frame_end();
    return s;
}

/* Central differences against backward, as wk_gradcheck (eps 1e-6, atol 1e-7, rtol 1e-5)
 * but independent of other ops' backward: the analytic side back-propagates a fixed
 * random weighting w of the output with wk_backward_ex, the numeric side sums w*y in
 * the test. Inputs may be non-contiguous float64 leaves (perturbed through strides). */
static void gradcheck(gc_fn fn, void *user, wk_tensor *const *in, int n, const char *what)
{
    const double eps = 1e-6, atol = 1e-7, rtol = 1e-5;
    bool flags[8];
    for (int k = 0; k < n; k++) {
        cr_assert_eq(in[k]->dtype, WK_DTYPE_F64);
        flags[k] = in[k]->requires_grad;
        wk_tensor_free(in[k]->grad);
        in[k]->grad = NULL;
        cr_assert_not_null(wk_requires_grad_(in[k], true), "%s", wk_last_error());
    }
    wk_generator g = wk_generator_make(99);
    wk_frame_begin();
    wk_tensor *y = fn(in, n, user);
    cr_assert_not_null(y, "%s: %s", what, wk_last_error());
    cr_assert(y->requires_grad, "%s: the output does not require grad", what);
    wk_tensor *w = wk_keep(wk_randn(y->shape, y->ndim, WK_DTYPE_F64, &g));
    cr_assert_eq(wk_backward_ex(y, w, false), 0, "%s: %s", what, wk_last_error());
    wk_frame_end();
    wk_no_grad_begin();
    for (int k = 0; k < n; k++) {
        wk_tensor *x = in[k];
        for (int64_t j = 0; j < wk_numel(x); j++) {
            int64_t off = 0, rem = j;
            for (int d = x->ndim - 1; d >= 0; d--) {
                off += (rem % x->shape[d]) * x->strides[d];
                rem /= x->shape[d];
            }
            double *p = (double *)wk_data(x) + off, x0 = *p;
            *p = x0 + eps;
            double lp = weighted_sum(fn, user, in, n, w);
            *p = x0 - eps;
            double lm = weighted_sum(fn, user, in, n, w);
            *p = x0;
            double num = (lp - lm) / (2 * eps), ana = x->grad ? tu_at(x->grad, j) : 0;
            cr_assert(fabs(ana - num) <= atol + rtol * fabs(num),
                      "%s: input %d element %lld: backward %.10g, finite differences %.10g",
                      what, k, (long long)j, ana, num);
        }
    }
    wk_no_grad_end();
    for (int k = 0; k < n; k++) {
        wk_tensor_free(in[k]->grad);
        in[k]->grad = NULL;
        in[k]->requires_grad = flags[k];
    }
    wk_tensor_free(w);
}

static void module_to_f64(wk_module *m)
{
    wk_no_grad_begin(); /* the copies are new leaves, not outputs of a cast */
    for (int i = 0; i < m->nparams; i++) {
        wk_tensor *c = wk_keep(wk_to_dtype(m->params[i].tensor, WK_DTYPE_F64));
        wk_tensor_free(m->params[i].tensor);
        m->params[i].tensor = wk_requires_grad_(c, true);
    }
    for (int i = 0; i < m->nchildren; i++) module_to_f64(m->children[i].module);
    wk_no_grad_end();
}

/* ---- values against PyTorch ---- */

/* torch 1.13, float64 (1.13 has no F.scaled_dot_product_attention, so its math):
 *   f = lambda n, a, b: [((i*i*a + i*b + 3) % 31)/10.0 - 1.5 for i in range(n)]
 *   s = q @ k.transpose(-2, -1) / sqrt(D); masked_fill(~tril(ones(L, S)), -inf) when
 *   causal; masked_fill(~mask, -inf) for a bool mask, + mask for a float one;
 *   o = softmax(s, -1) @ v; o.backward(dO)
 * plain: q = f(24, 5, 1) (2, 3, 4), k = f(40, 7, 2) (2, 5, 4), v = f(30, 3, 5) (2, 5, 3),
 *   dO = f(18, 4, 3) (2, 3, 3). */
static const double plain_o[] = {
    -0.19932913512605013, -0.018950832433712553, 0.2450954147050205,   0.02016136876664848,
    -0.12001464611674793, 0.025510189640884681,  0.43216851167673037,  -0.13522157652243763,
    -0.19595548458025464, -0.3371931664990816,   -0.30767537674050294, -0.76826464967406927,
    -0.091825167223685722, -0.044837742142536025, 0.26966609850572454, -1.0858321111643299,
    -0.19432516802364957, -0.8684571754584014};
static const double plain_dq[] = {
    -0.47375294639561694, -0.20843957562752288, -0.24854573548592376, -0.14273038094831664,
    -0.30252165873317438, 0.13932357650443561,  -0.13858811437480548, -0.11173838799090482,
    0.12075551586953065,  -0.24718833387249908, 0.10769178763558708,  -0.02287391392286936,
    -0.32750050433242506, -0.73470022947462321, -0.044962930262050567, 0.43969262057058212,
    -0.13447833361367811, -0.36238504027575047, -0.013236009665415573, 0.39027222016299656,
    -0.019101010558043086, 0.37541505934171365, -0.18945663348240621, 0.019626047305465688};
static const double plain_dk[] = {
    -0.23153121821877262, -0.19044101641439687, 0.16425392114088605,  0.061839352985093521,
    0.052132868984513948, 0.071569411835108232, 0.10221979062357123,  0.29000551974591082,
    0.12885770595889934,  0.043453040427817717, -0.14438054509152023, -0.12903493798336674,
    -0.046562669579442585, -0.040416962814404038, 0.035038299167682141, 0.017846140691418315,
    0.097103312854801838, 0.11583552696587494,  -0.15713146584061913, -0.24065607543905587,
    0.14032046339819193,  -0.17708120666323665, -0.18676628752034516, 0.19989661329854641,
    -0.29828374904275551, -0.23202841088265957, 0.30649800503106561,  -0.47402700934799685,
    -0.18535425941429268, 0.16769300328437542,  -0.011876163378652368, -0.22548954330268117,
    0.42568159236786868,  0.1400011921289149,   -0.091088169295455837, 0.59491329731612397,
    -0.082364047309012256, 0.10141542213260578, -0.016767384836612477, -0.095293357963992159};
static const double plain_dv[] = {
    -0.2618411921782145,  -0.13476707793104636, 0.38274001610676267,  -0.27117622018967524,
    -0.34559812656928984, 0.17122623790615638,  -0.19464856345866313, -0.099135090882382912,
    0.23482354937679406,  -0.49069259799183507, -0.43855049790693995, 0.21773471715325726,
    -0.28164142618161214, -0.48194920671034114, -0.10652452054297057, 0.39497914086496305,
    -0.21471745660108926, 0.11809111964064486,  0.14106488283146895,  0.46554964102357238,
    0.20748466929201578,  0.070447833469534676, 0.48826311553956603,  0.096684562970056981,
    0.40672945517118791,  0.0097934994644241734, 0.55016979391777865, 0.18677868766284575,
    0.35111120057352685,  -0.67243014582049654};
/* causal: q = f(32, 5, 1) (2, 4, 4), k = f(32, 7, 2) (2, 4, 4), v = f(24, 3, 5) (2, 4, 3),
 * dO = f(24, 4, 3). */
static const double causal_o[] = {
    -1.2, -0.39999999999999991, 1, -0.54408903077353332, -0.5192565398593576,
    0.10557595105481815, -0.2315398773447076, -0.39106937066174863, -0.21680085642170893,
    -0.31322862883115116, -0.024892040949986649, 0.23417255063086623, 1.5,
    0.19999999999999996, -0.5, -0.17449832249462621, -0.039214046070660966,
    0.6960702303533044, 0.19978986548322381, -0.37284620466827167, -0.34548227481976684,
    -0.61202887541832496, -0.27755445246199556, -1.0316135848691206};
static const double causal_dq[] = {
    0, 0, 0, 0, -0.4289802217163336, 0.15888156359864206, -0.23832234539796313,
    -0.14299340723877785, 0.5299423215289194, -0.42740986177731999, 0.20846516926461717,
    0.25094081018462128, -0.59162082094089852, 0.65851116825576517, -0.17269136699191184,
    -0.41984704753627594, 0, 0, 0, 0, 0.16455399758222747, 0.30560028122413702,
    -0.28209256728381876, 0.58769284850795578, 0.076790843521011384, -0.24749675667590179,
    0.055610549107143477, 0.071396684503280808, 0.041755071212806028, 0.00084589688096772808,
    -0.01554302275039747, -0.35207354047206529};
static const double causal_dk[] = {
    0.14194158832605044, -0.064550250527747904, -0.23021759249717538, -0.1845785796806908,
    -0.17591161657256443, -0.093374967726355063, 0.41734391913375746, 0.18815133460114716,
    0.080761064133549623, 0.21808512153743442,  -0.25397066361806153, 0.07664044945731896,
    -0.046791035887035606, -0.06015990328333147, 0.066844336981479416, -0.080213204377775307,
    -0.056286740687799063, 0.32517409054066521, 0.5229337537681541,  -0.09870282998821274,
    0.20109833524983842,  -0.24217934926848905, -0.2538879742018641, 0.18238267430141111,
    -0.12931041202136742, -0.17600183651620738, -0.1450363192409152, 0.10233434617486396,
    -0.015501182540671871, 0.093007095244031154, -0.12400946032537485, -0.18601419048806228};
static const double causal_dv[] = {
    -1.2269450132813815,  -0.31944911137372844, 1.4092612878090884,   -0.31442827199076506,
    -0.4451867772811543,  -0.035411609025144425, -0.083533998542426408, 0.20144051726418211,
    0.088233098381635275, -0.075092716185426761, 0.56319537139070086,  0.33791722283442044,
    1.2285339847762313,   -0.79803323710250562, 0.71321311297745049,  0.18683417087545029,
    0.59793206992530279,  -0.91761445405624265, -0.15280461451979871, 0.17328822097782473,
    0.24099486797910302,  -0.76256354113188263, 0.32681294619937834,  0.16340647309968917};
/* plain inputs with a float mask f(15, 2, 1) of shape (3, 5) (broadcast over the batch;
 * its gradient summed back), and with a bool mask [[1,0,1,1,0],[0,0,1,1,1],[1,1,1,1,0]]. */
static const double fmask_o[] = {
    -0.19936296375962298, -0.084772831980893137, 0.25860909310296237, -0.2346956771807629,
    -0.21874922877311725, 0.21614425686102898,   -0.028647823974436104, -0.089930409134468009,
    0.1403269063755781,   0.11556550691527717,   0.091722297734664532, -0.10412527171788691,
    -0.32652825821574205, -0.11247810764061801,  0.49471810538764005,  -0.8847484467430291,
    -0.11319858260315604, -0.46913405684726561};
static const double fmask_dmask[] = {
    0.13523894577912096, -0.4204138457403836,  -0.4149533047339149, 0.85034108792058349,
    -0.15021288322540602, 0.27249206016023314, -0.26083793141201828, -0.066801646110748999,
    0.17950707303048208, -0.12435955566794787, -0.70199773708937219, 0.29910708403347852,
    0.32467696882817021, 0.047291277303353092, 0.030922406924370455};
static const double bmask_o[] = {
    -0.4718665159082448,  0.079657579838101955, 0.52256812929154406,  0.60933202421599564,
    0.29685986280847104,  -0.058091695567774326, -0.26042448120993134, -0.35264550295901548,
    0.0012470733214530461, -0.21538533851534175, 0.17562286667333901,  -0.39278537478142322,
    0.31788316588562548,  0.31772256264890264,  0.27991181994117642,  -0.62128258631906164,
    -0.41228910705486038, -0.7209127658485821};

static void sdpa_vs_torch(wk_dtype dt, double tol)
{
    wk_tensor *q = wk_requires_grad_(fill(WK_SHAPE(2, 3, 4), dt, 5, 1, 1), true);
    wk_tensor *k = wk_requires_grad_(fill(WK_SHAPE(2, 5, 4), dt, 7, 2, 1), true);
    wk_tensor *v = wk_requires_grad_(fill(WK_SHAPE(2, 5, 3), dt, 3, 5, 1), true);
    wk_tensor *dO = fill(WK_SHAPE(2, 3, 3), dt, 4, 3, 1);
    wk_tensor *o = wk_scaled_dot_product_attention(q, k, v, NULL, false, 0, NULL);
    expect_shape(o, 2, 3, 3);
    cr_assert_eq(o->dtype, dt);
    expect_near(o, plain_o, tol, tol, "o");
    cr_assert_eq(wk_backward_ex(o, dO, false), 0, "%s", wk_last_error());
    expect_near(q->grad, plain_dq, tol, tol, "dq");
    expect_near(k->grad, plain_dk, tol, tol, "dk");
    expect_near(v->grad, plain_dv, tol, tol, "dv");
    wk_tensor *m = wk_requires_grad_(fill(WK_SHAPE(3, 5), dt, 2, 1, 1), true);
    o = wk_scaled_dot_product_attention(q, k, v, m, false, 0, NULL);
    expect_near(o, fmask_o, tol, tol, "o (float mask)");
    cr_assert_eq(wk_backward_ex(o, dO, false), 0, "%s", wk_last_error());
    expect_shape(m->grad, 3, 5);
    expect_near(m->grad, fmask_dmask, tol, tol, "dmask");
    wk_tensor *bm =
        wk_ne_scalar(tu_f32(WK_SHAPE(3, 5), 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0), 0);
    expect_near(wk_scaled_dot_product_attention(q, k, v, bm, false, 0, NULL), bmask_o, tol, tol,
                "o (bool mask)");
    q = wk_requires_grad_(fill(WK_SHAPE(2, 4, 4), dt, 5, 1, 1), true);
    k = wk_requires_grad_(fill(WK_SHAPE(2, 4, 4), dt, 7, 2, 1), true);
    v = wk_requires_grad_(fill(WK_SHAPE(2, 4, 3), dt, 3, 5, 1), true);
    o = wk_scaled_dot_product_attention(q, k, v, NULL, true, 0, NULL);
    expect_near(o, causal_o, tol, tol, "o (causal)");
    cr_assert_eq(wk_backward_ex(o, fill(WK_SHAPE(2, 4, 3), dt, 4, 3, 1), false), 0, "%s",
                 wk_last_error());
    expect_near(q->grad, causal_dq, tol, tol, "dq (causal)");
    expect_near(k->grad, causal_dk, tol, tol, "dk (causal)");
    expect_near(v->grad, causal_dv, tol, tol, "dv (causal)");
}

Test(attention, sdpa_matches_torch_f64) { sdpa_vs_torch(WK_DTYPE_F64, 1e-12); }
Test(attention, sdpa_matches_torch_f32) { sdpa_vs_torch(WK_DTYPE_F32, 3e-6); }

/* ---- larger sizes against the naive reference, thread-count independence ---- */

static void sdpa_large(const int64_t *qs, int nd, const int64_t *ks, int nk, const int64_t *vs,
                       int nv, bool causal, bool float_mask, wk_dtype dt, double tol)
{
    cr_assert(nd == nk && nd == nv);
    wk_tensor *q = wk_requires_grad_(rand_t(qs, nd, dt, 1, -1, 1), true);
    wk_tensor *k = wk_requires_grad_(rand_t(ks, nd, dt, 2, -1, 1), true);
    wk_tensor *v = wk_requires_grad_(rand_t(vs, nd, dt, 3, -1, 1), true);
    int64_t nb = wk_numel(q) / (qs[nd - 2] * qs[nd - 1]);
    int64_t Tq = qs[nd - 2], Tk = ks[nd - 2], D = qs[nd - 1], Dv = vs[nd - 1];
    wk_tensor *m = float_mask ? rand_t(WK_SHAPE(Tq, Tk), dt, 4, -2, 2) : NULL;
    int64_t os[WK_MAX_DIMS];
    memcpy(os, qs, sizeof(int64_t) * (size_t)nd);
    os[nd - 1] = Dv;
    wk_tensor *dO = rand_t(os, nd, dt, 5, -1, 1);
    double *add = NULL;
    if (m) {
        add = malloc(sizeof(double) * (size_t)(nb * Tq * Tk));
        for (int64_t e = 0; e < nb * Tq * Tk; e++) add[e] = tu_at(m, e % (Tq * Tk));
    }
    naive_in in = {nb, Tq, Tk, D, Dv, as_doubles(q), as_doubles(k), as_doubles(v), add, NULL,
                   causal, NULL, 0, as_doubles(dO)};
    double *o = malloc(sizeof(double) * (size_t)(nb * Tq * Dv));
    double *dq = malloc(sizeof(double) * (size_t)(nb * Tq * D));
    double *dk = malloc(sizeof(double) * (size_t)(nb * Tk * D));
    double *dv = malloc(sizeof(double) * (size_t)(nb * Tk * Dv));
    double *ds = malloc(sizeof(double) * (size_t)(nb * Tq * Tk));
    naive_attention(&in, o, dq, dk, dv, ds);
    /* Runs 1 and 2 use the same thread count (bit-identical results are the contract);
     * run 0 uses one thread: OpenBLAS's sgemm may round differently with another thread
     * count (seen with its Haswell kernels on AMD EPYC), so run 0 is only compared with
     * the reference. */
    wk_tensor *out[3], *g[3][3];
    for (int t = 0; t < 3; t++) {
        wk_set_num_threads(t ? 3 : 1);
        out[t] = wk_scaled_dot_product_attention(q, k, v, m, causal, 0, NULL);
        cr_assert_eq(wk_backward_ex(out[t], dO, false), 0, "%s", wk_last_error());
        g[t][0] = wk_grad_take(q);
        g[t][1] = wk_grad_take(k);
        g[t][2] = wk_grad_take(v);
        q->grad = k->grad = v->grad = NULL;
    }
    wk_set_num_threads(0);
    expect_near(out[0], o, tol, tol, "o");
    expect_near(g[0][0], dq, tol, tol, "dq");
    expect_near(g[0][1], dk, tol, tol, "dk");
    expect_near(g[0][2], dv, tol, tol, "dv");
    expect_near(out[1], o, tol, tol, "o (3 threads)");
    expect_near(g[1][0], dq, tol, tol, "dq (3 threads)");
    expect_same_bits(out[1], out[2], "o");
    for (int j = 0; j < 3; j++) expect_same_bits(g[1][j], g[2][j], "grads");
    free(add);
    free(o);
    free(dq);
    free(dk);
    free(dv);
    free(ds);
}

Test(attention, sdpa_large_batched)
{
    /* many small items: one item per thread */
    sdpa_large(WK_SHAPE(2, 3, 70, 33), WK_SHAPE(2, 3, 61, 33), WK_SHAPE(2, 3, 61, 17), false,
               false, WK_DTYPE_F32, 1e-5);
    sdpa_large(WK_SHAPE(5, 47, 16), WK_SHAPE(5, 47, 16), WK_SHAPE(5, 47, 16), false, true,
               WK_DTYPE_F64, 1e-12);
}

Test(attention, sdpa_large_items)
{
    /* big items: one after another with threaded BLAS and parallel softmax rows */
    sdpa_large(WK_SHAPE(2, 257, 40), WK_SHAPE(2, 263, 40), WK_SHAPE(2, 263, 41), true, false,
               WK_DTYPE_F32, 2e-5);
}

/* ---- layouts and broadcasting ---- */

Test(attention, sdpa_layouts)
{
    wk_tensor *q = rand_t(WK_SHAPE(2, 3, 6, 5), WK_DTYPE_F64, 10, -1, 1);
    wk_tensor *k = rand_t(WK_SHAPE(2, 3, 7, 5), WK_DTYPE_F64, 11, -1, 1);
    wk_tensor *v = rand_t(WK_SHAPE(2, 3, 7, 4), WK_DTYPE_F64, 12, -1, 1);
    wk_tensor *ref = wk_scaled_dot_product_attention(q, k, v, NULL, false, 0, NULL);
    const double *r = as_doubles(ref);
    /* k with columns contiguous (copied for BLAS), q a head view of (B, T, H, D) */
    wk_tensor *bthd = wk_contiguous(wk_permute(q, WK_DIMS(0, 2, 1, 3)));
    wk_tensor *qv = wk_permute(bthd, WK_DIMS(0, 2, 1, 3));
    cr_assert(!wk_is_contiguous(qv));
    tu_expect_values(wk_scaled_dot_product_attention(qv, swapped_copy(k), swapped_copy(v), NULL,
                                                     false, 0, NULL),
                     r, wk_numel(ref), 1e-14, 1e-14, "strided q, k, v");
    /* broadcast batch dims: k, v shared over the batch, fewer dims, expanded */
    wk_tensor *k1 = wk_narrow(k, 0, 0, 1), *v1 = wk_select(v, 0, 0);
    wk_tensor *kx = wk_contiguous(wk_expand(k1, WK_SHAPE(2, 3, 7, 5)));
    wk_tensor *vx = wk_contiguous(wk_expand(v1, WK_SHAPE(2, 3, 7, 4)));
    wk_tensor *rb = wk_scaled_dot_product_attention(q, kx, vx, NULL, false, 0, NULL);
    tu_expect_values(wk_scaled_dot_product_attention(q, k1, v1, NULL, false, 0, NULL),
                     as_doubles(rb), wk_numel(rb), 1e-14, 1e-14, "broadcast k, v");
    tu_expect_values(wk_scaled_dot_product_attention(q, wk_expand(k1, WK_SHAPE(2, 3, 7, 5)), v1,
                                                     NULL, false, 0, NULL),
                     as_doubles(rb), wk_numel(rb), 1e-14, 1e-14, "expanded k");
    /* a mask broadcast over heads: (2, 1, 6, 7), and a 0-d one */
    wk_tensor *m = rand_t(WK_SHAPE(2, 1, 6, 7), WK_DTYPE_F64, 13, -1, 1);
    wk_tensor *mx = wk_contiguous(wk_expand(m, WK_SHAPE(2, 3, 6, 7)));
    wk_tensor *rm = wk_scaled_dot_product_attention(q, k, v, mx, false, 0, NULL);
    tu_expect_values(wk_scaled_dot_product_attention(q, k, v, m, false, 0, NULL), as_doubles(rm),
                     wk_numel(rm), 1e-14, 1e-14, "broadcast mask");
    tu_expect_values(wk_scaled_dot_product_attention(q, k, v, wk_scalar(3, WK_DTYPE_F64), false,
                                                     0, NULL),
                     r, wk_numel(ref), 1e-14, 1e-14, "a constant mask changes nothing");
    /* batch of 2 dims of which the q's are 1 */
    expect_shape(wk_scaled_dot_product_attention(wk_narrow(q, 1, 0, 1), k, v, NULL, false, 0,
                                                 NULL),
                 2, 3, 6, 4);
}

Test(attention, sdpa_edges)
{
    /* one query and key; D = 1; Tq > Tk causal (the rows past Tk see every key) */
    wk_tensor *q1 = tu_f64(WK_SHAPE(1, 1), 2), *k1 = tu_f64(WK_SHAPE(1, 1), 3);
    expect_values(wk_scaled_dot_product_attention(q1, k1, tu_f64(WK_SHAPE(1, 2), 4, 5), NULL,
                                                  true, 0, NULL),
                  1e-15, 4, 5);
    wk_tensor *q = rand_t(WK_SHAPE(5, 3), WK_DTYPE_F64, 20, -1, 1);
    wk_tensor *k = rand_t(WK_SHAPE(2, 3), WK_DTYPE_F64, 21, -1, 1);
    wk_tensor *v = tu_f64(WK_SHAPE(2, 1), 1, 3);
    wk_tensor *o = wk_scaled_dot_product_attention(q, k, v, NULL, true, 0, NULL);
    cr_assert_float_eq(tu_at(o, 0), 1, 1e-15, "row 0 sees key 0 only");
    cr_assert(tu_at(o, 1) > 1 && tu_at(o, 1) < 3);
    /* a fully masked row is NaN, as torch's math implementation gives */
    wk_tensor *bm = wk_ne_scalar(tu_f32(WK_SHAPE(2, 2), 0, 0, 1, 0), 0);
    wk_tensor *om =
        wk_scaled_dot_product_attention(wk_narrow(q, 0, 0, 2), k, v, bm, false, 0, NULL);
    cr_assert(isnan(tu_at(om, 0)));
    cr_assert_float_eq(tu_at(om, 1), 1, 0);
    /* 0-size dims */
    expect_shape(wk_scaled_dot_product_attention(wk_zeros(WK_SHAPE(0, 3, 2), WK_DTYPE_F32),
                                                 wk_zeros(WK_SHAPE(0, 4, 2), WK_DTYPE_F32),
                                                 wk_zeros(WK_SHAPE(0, 4, 5), WK_DTYPE_F32), NULL,
                                                 false, 0, NULL),
                 0, 3, 5);
    expect_values(wk_scaled_dot_product_attention(wk_zeros(WK_SHAPE(1, 0), WK_DTYPE_F32),
                                                  wk_zeros(WK_SHAPE(2, 0), WK_DTYPE_F32),
                                                  tu_f32(WK_SHAPE(2, 1), 1, 2), NULL, false, 0,
                                                  NULL),
                  1e-7, 1.5);
}

Test(attention, sdpa_dropout)
{
    wk_tensor *q = rand_t(WK_SHAPE(3, 6, 4), WK_DTYPE_F64, 30, -1, 1);
    wk_tensor *k = rand_t(WK_SHAPE(3, 5, 4), WK_DTYPE_F64, 31, -1, 1);
    wk_tensor *v = rand_t(WK_SHAPE(3, 5, 2), WK_DTYPE_F64, 32, -1, 1);
    wk_generator g = wk_generator_make(4), saved = g;
    wk_tensor *o = wk_scaled_dot_product_attention(q, k, v, NULL, false, 0.4, &g);
    cr_assert_neq(g.offset, saved.offset, "the generator advanced");
    /* the same mask as wk_bernoulli_p(keep = 0.6) over the weights (3, 6, 5) */
    wk_tensor *mask = wk_bernoulli_p(WK_SHAPE(3, 6, 5), 0.6, WK_DTYPE_U8, &saved);
    naive_in in = {3, 6, 5, 4, 2, as_doubles(q), as_doubles(k), as_doubles(v), NULL, NULL,
                   false, wk_data(mask), 0.4, NULL};
    double ref[36];
    naive_attention(&in, ref, NULL, NULL, NULL, NULL);
    expect_near(o, ref, 1e-13, 1e-13, "o");
    g = wk_generator_make(4);
    expect_same_bits(wk_scaled_dot_product_attention(q, k, v, NULL, false, 0.4, &g), o, "replay");
    wk_tensor *z = wk_scaled_dot_product_attention(q, k, v, NULL, false, 1, &g);
    for (int i = 0; i < 36; i++) cr_assert_eq(tu_at(z, i), 0);
}

/* ---- the packed multi-head form ---- */

/* The heads of qkv (B, T, 3E) as q, k, v (B, H, T, D): torch's split/view/transpose. */
static void split_heads(wk_tensor *qkv, int64_t H, wk_tensor **qkv3)
{
    int64_t B = qkv->shape[0], T = qkv->shape[1], E = qkv->shape[2] / 3, D = E / H;
    for (int j = 0; j < 3; j++) {
        wk_tensor *part = wk_contiguous(wk_narrow(qkv, 2, j * E, E));
        qkv3[j] = wk_contiguous(wk_transpose(wk_view(part, WK_SHAPE(B, T, H, D)), 1, 2));
    }
}

Test(attention, qkv_matches_split_heads)
{
    for (int causal = 0; causal < 2; causal++) {
        wk_tensor *wide = rand_t(WK_SHAPE(3, 7, 30), WK_DTYPE_F64, 40 + causal, -1, 1);
        wk_tensor *qkv = wk_narrow(wide, 2, 3, 24); /* rows 30 apart: read in place */
        wk_tensor *p[3];
        split_heads(qkv, 2, p);
        wk_tensor *ref = wk_scaled_dot_product_attention(p[0], p[1], p[2], NULL, causal, 0, NULL);
        wk_tensor *merged = wk_contiguous(wk_transpose(ref, 1, 2)); /* (B, T, H, D) */
        wk_tensor *o = wk_qkv_attention(qkv, 2, causal, 0, NULL);
        expect_shape(o, 3, 7, 8);
        tu_expect_values(o, as_doubles(merged), wk_numel(o), 1e-14, 1e-14, "qkv vs split heads");
        tu_expect_values(wk_qkv_attention(swapped_copy(qkv), 2, causal, 0, NULL),
                         as_doubles(merged), wk_numel(o), 1e-14, 1e-14, "transposed qkv");
    }
    /* float32, one head, T = 1 */
    wk_tensor *qkv = rand_t(WK_SHAPE(2, 1, 9), WK_DTYPE_F32, 45, -1, 1);
    wk_tensor *o = wk_qkv_attention(qkv, 1, true, 0, NULL);
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < 3; c++)
            cr_assert_eq(tu_at(o, b * 3 + c), tu_at(qkv, b * 9 + 6 + c), "one key: o = v");
}

Test(attention, qkv_large_thread_independent)
{
    wk_tensor *qkv =
        wk_requires_grad_(rand_t(WK_SHAPE(4, 65, 3 * 96), WK_DTYPE_F32, 50, -1, 1), true);
    wk_tensor *dO = rand_t(WK_SHAPE(4, 65, 96), WK_DTYPE_F32, 51, -1, 1);
    wk_tensor *o[2], *g[2];
    for (int t = 0; t < 2; t++) {
        wk_set_num_threads(t ? 3 : 1);
        o[t] = wk_qkv_attention(qkv, 4, true, 0, NULL);
        cr_assert_eq(wk_backward_ex(o[t], dO, false), 0, "%s", wk_last_error());
        g[t] = wk_grad_take(qkv);
        qkv->grad = NULL;
    }
    wk_set_num_threads(0);
    expect_same_bits(o[0], o[1], "o");
    expect_same_bits(g[0], g[1], "dqkv");
    /* against the naive reference on the split heads */
    wk_tensor *p[3];
    split_heads(qkv, 4, p);
    wk_tensor *dOh = wk_contiguous(wk_transpose(wk_view(dO, WK_SHAPE(4, 65, 4, 24)), 1, 2));
    naive_in in = {16, 65, 65, 24, 24, as_doubles(p[0]), as_doubles(p[1]), as_doubles(p[2]),
                   NULL, NULL, true, NULL, 0, as_doubles(dOh)};
    double *ro = malloc(sizeof(double) * 16 * 65 * 24 * 4), *rq = ro + 16 * 65 * 24;
    double *rk = rq + 16 * 65 * 24, *rv = rk + 16 * 65 * 24;
    double *ds = malloc(sizeof(double) * 16 * 65 * 65);
    naive_attention(&in, ro, rq, rk, rv, ds);
    for (int64_t b = 0; b < 4; b++)
        for (int64_t h = 0; h < 4; h++)
            for (int64_t t = 0; t < 65; t++)
                for (int64_t d = 0; d < 24; d++) {
                    int64_t r = ((b * 4 + h) * 65 + t) * 24 + d, c = h * 24 + d;
                    int64_t oi = (b * 65 + t) * 96 + c, gi = (b * 65 + t) * 288 + c;
                    cr_assert(fabs(tu_at(o[0], oi) - ro[r]) < 1e-5);
                    cr_assert(fabs(tu_at(g[0], gi) - rq[r]) < 1e-5, "dq");
                    cr_assert(fabs(tu_at(g[0], gi + 96) - rk[r]) < 1e-5, "dk");
                    cr_assert(fabs(tu_at(g[0], gi + 192) - rv[r]) < 1e-5, "dv");
                }
    free(ro);
    free(ds);
}

/* ---- gradient checks ---- */

typedef struct {
    bool causal, mask, bool_mask;
    double p;
} sdpa_case;

static wk_tensor *sdpa_fn(wk_tensor *const *in, int n, void *user)
{
    const sdpa_case *c = user;
    wk_generator g = wk_generator_make(17); /* the same dropout mask in every evaluation */
    wk_tensor *m = NULL;
    if (c->mask) m = n > 3 ? in[3] : NULL;
    if (c->bool_mask)
        m = wk_ne_scalar(tu_f32(WK_SHAPE(2, 3), 1, 0, 1, 1, 1, 0), 0); /* broadcasts (.., 2, 3) */
    return wk_scaled_dot_product_attention(in[0], in[1], in[2], m, c->causal, c->p, &g);
}

Test(attention, sdpa_gradcheck)
{
    const sdpa_case cases[] = {{false, false, false, 0}, {true, false, false, 0},
                               {false, true, false, 0},  {false, false, true, 0},
                               {false, false, false, 0.3}, {true, false, false, 0.5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const sdpa_case *c = &cases[i];
        wk_tensor *in[4] = {rand_t(WK_SHAPE(2, 2, 3), WK_DTYPE_F64, 60 + i, -1, 1),
                            rand_t(WK_SHAPE(2, 3, 3), WK_DTYPE_F64, 70 + i, -1, 1),
                            rand_t(WK_SHAPE(2, 3, 2), WK_DTYPE_F64, 80 + i, -1, 1),
                            rand_t(WK_SHAPE(2, 3), WK_DTYPE_F64, 90 + i, -1, 1)};
        char what[64];
        snprintf(what, sizeof what, "sdpa case %zu", i);
        gradcheck(sdpa_fn, (void *)c, in, c->mask ? 4 : 3, what);
    }
}

Test(attention, sdpa_gradcheck_layouts)
{
    sdpa_case c = {false, true, false, 0};
    /* broadcast: k and v shared over the first batch dim, the mask over everything */
    gradcheck(sdpa_fn, &c,
              (wk_tensor *[]){rand_t(WK_SHAPE(2, 2, 3, 2), WK_DTYPE_F64, 100, -1, 1),
                              rand_t(WK_SHAPE(2, 4, 2), WK_DTYPE_F64, 101, -1, 1),
                              rand_t(WK_SHAPE(1, 2, 4, 3), WK_DTYPE_F64, 102, -1, 1),
                              rand_t(WK_SHAPE(1, 4), WK_DTYPE_F64, 103, -1, 1)},
              4, "sdpa broadcast");
    /* non-contiguous leaves: k and v column-major, q with a row stride */
    wk_tensor *wide = rand_t(WK_SHAPE(2, 3, 5), WK_DTYPE_F64, 104, -1, 1);
    sdpa_case c2 = {true, false, false, 0};
    gradcheck(sdpa_fn, &c2,
              (wk_tensor *[]){wk_narrow(wide, 2, 1, 3),
                              swapped_copy(rand_t(WK_SHAPE(2, 4, 3), WK_DTYPE_F64, 105, -1, 1)),
                              swapped_copy(rand_t(WK_SHAPE(2, 4, 2), WK_DTYPE_F64, 106, -1, 1))},
              3, "sdpa strided");
    /* causal query blocks (Tq >= 64), with Tq < Tk, without and with dropout */
    for (int d = 0; d < 2; d++) {
        sdpa_case c3 = {true, false, false, d ? 0.3 : 0};
        gradcheck(sdpa_fn, &c3,
                  (wk_tensor *[]){rand_t(WK_SHAPE(1, 70, 2), WK_DTYPE_F64, 107 + d, -1, 1),
                                  rand_t(WK_SHAPE(1, 75, 2), WK_DTYPE_F64, 109 + d, -1, 1),
                                  rand_t(WK_SHAPE(1, 75, 2), WK_DTYPE_F64, 111 + d, -1, 1)},
                  3, d ? "sdpa causal blocks, dropout" : "sdpa causal blocks");
    }
}

typedef struct {
    int64_t heads;
    bool causal;
    double p;
} qkv_case;

static wk_tensor *qkv_fn(wk_tensor *const *in, int n, void *user)
{
    const qkv_case *c = user;
    (void)n;
    wk_generator g = wk_generator_make(18);
    return wk_qkv_attention(in[0], c->heads, c->causal, c->p, &g);
}

Test(attention, qkv_gradcheck)
{
    const qkv_case cases[] = {{2, true, 0}, {1, false, 0}, {2, false, 0.25}, {4, true, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wk_tensor *x = rand_t(WK_SHAPE(2, 3, 12), WK_DTYPE_F64, 110 + i, -1, 1);
        if (i == 3) x = wk_narrow(rand_t(WK_SHAPE(2, 3, 15), WK_DTYPE_F64, 115, -1, 1), 2, 2, 12);
        char what[64];
        snprintf(what, sizeof what, "qkv case %zu", i);
        gradcheck(qkv_fn, (void *)&cases[i], &x, 1, what);
    }
}

/* ---- errors ---- */

Test(attention, errors)
{
    wk_tensor *q = wk_zeros(WK_SHAPE(2, 3, 4), WK_DTYPE_F32);
    wk_tensor *k = wk_zeros(WK_SHAPE(2, 5, 4), WK_DTYPE_F32);
    wk_tensor *v = wk_zeros(WK_SHAPE(2, 5, 6), WK_DTYPE_F32);
    expect_error(wk_scaled_dot_product_attention(q, NULL, v, NULL, false, 0, NULL), "is NULL");
    expect_error(wk_scaled_dot_product_attention(q, wk_zeros(WK_SHAPE(2, 5, 3), WK_DTYPE_F32), v,
                                                 NULL, false, 0, NULL),
                 "scaled_dot_product_attention: expected q (..., Tq, D), k (..., Tk, D) and v "
                 "(..., Tk, Dv), got q [2, 3, 4], k [2, 5, 3], v [2, 5, 6]");
    expect_error(wk_scaled_dot_product_attention(q, k, wk_zeros(WK_SHAPE(2, 4, 6), WK_DTYPE_F32),
                                                 NULL, false, 0, NULL),
                 "expected q (..., Tq, D)");
    expect_error(wk_scaled_dot_product_attention(q, wk_zeros(WK_SHAPE(3, 5, 4), WK_DTYPE_F32), v,
                                                 NULL, false, 0, NULL),
                 "the batch dims of q [2, 3, 4], k [3, 5, 4] and v [2, 5, 6] do not broadcast");
    expect_error(wk_scaled_dot_product_attention(wk_zeros(WK_SHAPE(4), WK_DTYPE_F32), k, v, NULL,
                                                 false, 0, NULL),
                 "q, k and v need at least 2 dims");
    expect_error(wk_scaled_dot_product_attention(q, wk_zeros(WK_SHAPE(2, 5, 4), WK_DTYPE_F64), v,
                                                 NULL, false, 0, NULL),
                 "q, k and v must have the same dtype, got float32, float64 and float32");
    expect_error(wk_scaled_dot_product_attention(wk_zeros(WK_SHAPE(2, 3), WK_DTYPE_I32),
                                                 wk_zeros(WK_SHAPE(2, 3), WK_DTYPE_I32),
                                                 wk_zeros(WK_SHAPE(2, 3), WK_DTYPE_I32), NULL,
                                                 false, 0, NULL),
                 "q has dtype int32 (shape [2, 3]); expected float32 or float64");
    expect_error(wk_scaled_dot_product_attention(wk_zeros(WK_SHAPE(2, 3), WK_DTYPE_F16), q, q, NULL,
                                                 false, 0, NULL),
                 "storage type");
    wk_tensor *bm = wk_zeros(WK_SHAPE(3, 5), WK_DTYPE_BOOL);
    expect_error(wk_scaled_dot_product_attention(q, k, v, bm, true, 0, NULL),
                 "an explicit attn_mask should not be given together with is_causal=true");
    expect_error(wk_scaled_dot_product_attention(q, k, v, wk_zeros(WK_SHAPE(3, 4), WK_DTYPE_BOOL),
                                                 false, 0, NULL),
                 "attn_mask of shape [3, 4] does not broadcast to the scores' shape [2, 3, 5]");
    expect_error(wk_scaled_dot_product_attention(
                     q, k, v, wk_zeros(WK_SHAPE(1, 2, 3, 5), WK_DTYPE_F32), false, 0, NULL),
                 "does not broadcast");
    expect_error(wk_scaled_dot_product_attention(q, k, v, wk_zeros(WK_SHAPE(3, 5), WK_DTYPE_I64),
                                                 false, 0, NULL),
                 "attn_mask must be bool or float32 like q, got int64");
    expect_error(wk_scaled_dot_product_attention(q, k, v, NULL, false, 1.5, NULL),
                 "scaled_dot_product_attention: dropout_p has to be between 0 and 1, got 1.5");
    expect_error(wk_qkv_attention(wk_zeros(WK_SHAPE(2, 3, 10), WK_DTYPE_F32), 2, true, 0, NULL),
                 "qkv_attention: expected qkv of shape (B, T, 3E) with E a multiple of "
                 "num_heads, got [2, 3, 10] and num_heads=2");
    expect_error(wk_qkv_attention(wk_zeros(WK_SHAPE(3, 12), WK_DTYPE_F32), 2, true, 0, NULL),
                 "got [3, 12]");
    expect_error(wk_qkv_attention(wk_zeros(WK_SHAPE(1, 3, 12), WK_DTYPE_F32), 0, true, 0, NULL),
                 "num_heads=0");
    expect_error(wk_qkv_attention(wk_zeros(WK_SHAPE(1, 3, 12), WK_DTYPE_F32), 2, true, -1, NULL),
                 "dropout_p has to be between 0 and 1");
}

/* ---- modules ---- */

static void expect_names(const wk_module *m, const char *const *names, int n)
{
    wk_named_param np[16];
    int count = wk_module_named_parameters(m, true, np, 16);
    cr_assert_eq(count, n, "%d entries, expected %d", count, n);
    for (int i = 0; i < n; i++)
        cr_assert_str_eq(np[i].name, names[i], "entry %d is %s, expected %s", i, np[i].name,
                         names[i]);
}

/* Max |x| and the standard deviation of a tensor's elements. */
static void stats(const wk_tensor *t, double *amax, double *sd)
{
    double s = 0, s2 = 0, m = 0;
    int64_t n = wk_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double v = tu_at(t, i);
        s += v;
        s2 += v * v;
        if (fabs(v) > m) m = fabs(v);
    }
    *amax = m;
    *sd = sqrt(s2 / n - (s / n) * (s / n));
}

Test(attention, multihead_attention_names_and_init)
{
    wk_generator g = wk_generator_make(1);
    int64_t E = 64;
    wk_module *m = wk_multihead_attention_new(E, 8, 0, true, false, &g);
    cr_assert_not_null(m, "%s", wk_last_error());
    cr_assert_str_eq(m->type, "MultiheadAttention");
    expect_names(m, (const char *const[]){"in_proj_weight", "in_proj_bias", "out_proj.weight",
                                          "out_proj.bias"},
                 4);
    wk_tensor *w = wk_module_find(m, "in_proj_weight"), *ow = wk_module_find(m, "out_proj.weight");
    expect_shape(w, 3 * E, E);
    expect_shape(wk_module_find(m, "in_proj_bias"), 3 * E);
    expect_shape(ow, E, E);
    expect_shape(wk_module_find(m, "out_proj.bias"), E);
    cr_assert_str_eq(wk_module_child(m, "out_proj")->type, "NonDynamicallyQuantizableLinear");
    double amax, sd, a = sqrt(6.0 / (double)(E + 3 * E)); /* xavier_uniform bound */
    stats(w, &amax, &sd);
    cr_assert(amax <= a && amax > 0.98 * a, "in_proj_weight max %g, bound %g", amax, a);
    cr_assert(fabs(sd - a / sqrt(3)) < 0.03 * a, "in_proj_weight sd %g", sd);
    double b = 1 / sqrt((double)E); /* kaiming_uniform(a = sqrt 5): 1/sqrt(fan_in) */
    stats(ow, &amax, &sd);
    cr_assert(amax <= b && amax > 0.95 * b, "out_proj.weight max %g, bound %g", amax, b);
    cr_assert(fabs(sd - b / sqrt(3)) < 0.05 * b, "out_proj.weight sd %g", sd);
    stats(wk_module_find(m, "in_proj_bias"), &amax, &sd);
    cr_assert_eq(amax, 0);
    stats(wk_module_find(m, "out_proj.bias"), &amax, &sd);
    cr_assert_eq(amax, 0);
    cr_assert_eq(wk_module_num_parameters(m), 4 * E * E + 4 * E);
    wk_module_free(m);
    m = wk_multihead_attention_new(E, 8, 0, false, false, &g);
    expect_names(m, (const char *const[]){"in_proj_weight", "out_proj.weight"}, 2);
    wk_module_free(m);
    expect_error(wk_multihead_attention_new(10, 3, 0, true, false, &g),
                 "MultiheadAttention: embed_dim (10) must be a positive multiple of num_heads (3)");
    expect_error(wk_multihead_attention_new(12, 3, 1.5, true, false, &g),
                 "MultiheadAttention: dropout_p has to be between 0 and 1");
}

/* torch 1.13: mha = nn.MultiheadAttention(4, 2, batch_first=True).double() with
 * in_proj_weight = 0.5 f(48, 5, 3) (12, 4), in_proj_bias = 0.2 f(12, 3, 1),
 * out_proj.weight = 0.5 f(16, 7, 4) (4, 4), out_proj.bias = 0.2 f(4, 2, 2);
 * x = f(24, 11, 5) (2, 3, 4); mha(x, x, x, attn_mask=triu(ones(3, 3), 1).bool()) and
 * without a mask. nanoGPT's CausalSelfAttention with the same weights as c_attn and
 * c_proj gives the causal values. */
static const double mha_causal_y[] = {
    -0.80000000000000004, -1.2310000000000003, 0.89625000000000021, -0.46324999999999988,
    -0.8211935252670769,  -0.84539944777273834, 0.45302474680290228, -0.32004998592916239,
    -0.13403417138781154, -0.41336679593116127, 0.35250496569553436, -0.17709662659845432,
    -1.01675,             -1.86225,             1.4924999999999999,  -0.21374999999999977,
    -0.99425286989667716, -1.3937364655188658,  0.9508539292808571,  0.033181610064434347,
    -0.8393186700904488,  -0.4004943130491615,  0.06188615687492556, -0.407952145315368};
static const double mha_y[] = {
    0.11169677816567442,  -0.19513012962531739, 0.23095009910865383,  -0.062337695837812346,
    -0.20864215848317894, -0.41207798714538213, 0.30614152067750511,  -0.17156685533409738,
    -0.13403417138781154, -0.41336679593116127, 0.35250496569553436,  -0.17709662659845432,
    -1.009201592537627,   -1.1781932563430968,  0.75195139157340718,  -0.28196962127919151,
    -0.9254860943408223,  -0.82645222792692297, 0.4340743543351066,   -0.31415563635861327,
    -0.8393186700904488,  -0.4004943130491615,  0.06188615687492556,  -0.407952145315368};

static void set_param(wk_module *m, const char *path, int a, int b, double scale)
{
    wk_tensor *t = wk_module_find(m, path);
    cr_assert_not_null(t, "no %s", path);
    cr_assert_not_null(wk_copy_(t, fill(t->shape, t->ndim, WK_DTYPE_F64, a, b, scale)));
}

Test(attention, multihead_attention_matches_torch)
{
    for (int causal = 0; causal < 2; causal++) {
        wk_module *m = wk_multihead_attention_new(4, 2, 0, true, causal, NULL);
        module_to_f64(m);
        set_param(m, "in_proj_weight", 5, 3, 0.5);
        set_param(m, "in_proj_bias", 3, 1, 0.2);
        set_param(m, "out_proj.weight", 7, 4, 0.5);
        set_param(m, "out_proj.bias", 2, 2, 0.2);
        wk_tensor *x = fill(WK_SHAPE(2, 3, 4), WK_DTYPE_F64, 11, 5, 1);
        wk_tensor *y = wk_module_forward(m, x);
        expect_shape(y, 2, 3, 4);
        expect_near(y, causal ? mha_causal_y : mha_y, 1e-12, 1e-12, "MultiheadAttention");
        expect_error(wk_module_forward(m, wk_zeros(WK_SHAPE(2, 3, 5), WK_DTYPE_F64)),
                     "MultiheadAttention: expected an input of shape (B, T, 4), got [2, 3, 5]");
        wk_module_free(m);
    }
}

Test(attention, causal_self_attention)
{
    wk_generator g = wk_generator_make(2);
    wk_module *m = wk_causal_self_attention_new(4, 2, true, 0, &g);
    cr_assert_not_null(m, "%s", wk_last_error());
    cr_assert_str_eq(m->type, "CausalSelfAttention");
    expect_names(m, (const char *const[]){"c_attn.weight", "c_attn.bias", "c_proj.weight",
                                          "c_proj.bias"},
                 4);
    expect_shape(wk_module_find(m, "c_attn.weight"), 12, 4);
    expect_shape(wk_module_find(m, "c_proj.bias"), 4);
    double amax, sd; /* torch's Linear default: biases U(-1/sqrt(in), 1/sqrt(in)) */
    stats(wk_module_find(m, "c_attn.bias"), &amax, &sd);
    cr_assert(amax > 0 && amax <= 0.5);
    module_to_f64(m);
    set_param(m, "c_attn.weight", 5, 3, 0.5);
    set_param(m, "c_attn.bias", 3, 1, 0.2);
    set_param(m, "c_proj.weight", 7, 4, 0.5);
    set_param(m, "c_proj.bias", 2, 2, 0.2);
    wk_tensor *x = fill(WK_SHAPE(2, 3, 4), WK_DTYPE_F64, 11, 5, 1);
    expect_near(wk_module_forward(m, x), mha_causal_y, 1e-12, 1e-12, "CausalSelfAttention");
    wk_module_free(m);
    m = wk_causal_self_attention_new(4, 2, false, 0, &g);
    expect_names(m, (const char *const[]){"c_attn.weight", "c_proj.weight"}, 2);
    wk_module_free(m);
    expect_error(wk_causal_self_attention_new(6, 4, true, 0, &g),
                 "CausalSelfAttention: embed_dim (6) must be a positive multiple of num_heads (4)");
}

Test(attention, attention_dropout_train_and_eval)
{
    wk_generator g = wk_generator_make(3);
    wk_module *m = wk_causal_self_attention_new(8, 2, true, 0.5, &g);
    wk_module *a = wk_multihead_attention_new(8, 2, 0.5, true, true, &g);
    wk_tensor *x = rand_t(WK_SHAPE(2, 5, 8), WK_DTYPE_F32, 120, -1, 1);
    for (int j = 0; j < 2; j++) {
        wk_module *mod = j ? a : m;
        wk_generator *gen = wk_module_dropout_generator(mod);
        cr_assert_not_null(gen, "%s", wk_last_error());
        wk_generator before = *gen;
        wk_tensor *y1 = wk_module_forward(mod, x), *y2 = wk_module_forward(mod, x);
        cr_assert(memcmp(wk_data(y1), wk_data(y2), 80 * 4), "training draws new masks");
        *gen = before;
        expect_same_bits(wk_module_forward(mod, x), y1, "replayed generator");
        wk_module_train(mod, false);
        before = *gen;
        expect_same_bits(wk_module_forward(mod, x), wk_module_forward(mod, x), "evaluation");
        cr_assert_eq(gen->offset, before.offset, "no draws in evaluation");
    }
    wk_module_free(m);
    wk_module_free(a);
}

typedef struct {
    wk_module *m;
} module_case;

static wk_tensor *module_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n;
    return wk_module_forward(((module_case *)user)->m, in[0]);
}

/* Needs wk_linear's backward (another branch): skipped until it is there. */
Test(attention, attention_modules_gradcheck)
{
    wk_tensor *x = wk_requires_grad_(wk_ones(WK_SHAPE(1, 2), WK_DTYPE_F64), true);
    wk_tensor *l = wk_linear(x, wk_ones(WK_SHAPE(2, 2), WK_DTYPE_F64), NULL);
    if (!l || !l->requires_grad) cr_assert_fail("linear has no backward on this branch yet");
    wk_module *ms[] = {wk_multihead_attention_new(6, 2, 0, true, true, NULL),
                       wk_causal_self_attention_new(6, 3, true, 0, NULL)};
    for (int i = 0; i < 2; i++) {
        module_to_f64(ms[i]);
        wk_tensor *in[5] = {rand_t(WK_SHAPE(2, 3, 6), WK_DTYPE_F64, 130 + i, -1, 1)};
        wk_named_param np[4];
        int n = wk_module_named_parameters(ms[i], false, np, 4);
        for (int j = 0; j < n; j++) in[1 + j] = np[j].tensor;
        module_case c = {ms[i]};
        gradcheck(module_fn, &c, in, 1 + n, ms[i]->type);
        wk_module_free(ms[i]);
    }
}

/* When the element-wise and reduction ops have backward (other branches), wk_gradcheck
 * itself checks these ops too. */
Test(attention, wk_gradcheck_when_available)
{
    wk_tensor *t = wk_requires_grad_(wk_ones(WK_SHAPE(2), WK_DTYPE_F64), true);
    wk_tensor *s = wk_sum(wk_mul(t, t), WK_ALL_DIMS, false);
    if (!s || !s->requires_grad) cr_assert_fail("mul/sum have no backward on this branch yet");
    sdpa_case c = {true, false, false, 0.2};
    wk_tensor *in[3] = {rand_t(WK_SHAPE(2, 4, 3), WK_DTYPE_F64, 140, -1, 1),
                        rand_t(WK_SHAPE(2, 4, 3), WK_DTYPE_F64, 141, -1, 1),
                        rand_t(WK_SHAPE(2, 4, 2), WK_DTYPE_F64, 142, -1, 1)};
    cr_assert_eq(wk_gradcheck(sdpa_fn, &c, in, 3, 1e-6, 1e-7, 1e-5), 0, "%s", wk_last_error());
    qkv_case qc = {2, true, 0};
    wk_tensor *x = rand_t(WK_SHAPE(2, 3, 12), WK_DTYPE_F64, 143, -1, 1);
    cr_assert_eq(wk_gradcheck(qkv_fn, &qc, &x, 1, 1e-6, 1e-7, 1e-5), 0, "%s", wk_last_error());
}
