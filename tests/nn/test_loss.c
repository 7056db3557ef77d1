/* Losses: values against PyTorch, every cross_entropy option, gradchecks of every loss,
 * huge logits, large inputs against a naive loop, determinism, errors. */
#include "autograd/node-impl.h"
#include "test_util.h"

TestSuite(loss, .init = tu_setup, .fini = tu_teardown);

/* ---- gradient checking ----
 * wk_gradcheck builds sum(w * y) with wk_mul and reaches transposed inputs through
 * wk_transpose, so it needs the element-wise and view families' backward (parallel
 * branches of issue 3). Until they record, `check` makes the same comparison locally: w
 * goes to wk_backward_ex as y's gradient, and a transposed input is itself the leaf, its
 * gradient mapped back onto the base's elements. */

typedef wk_tensor *(*op_fn)(wk_tensor *const *x, int n, const void *user);

typedef struct {
    op_fn op;
    const void *user;
    bool transposed[4]; /* the op sees wk_transpose(base, 0, -1) */
} gc_ctx;

/* The input the op sees: b, or b transposed. */
static wk_tensor *view_of(wk_tensor *b, bool transposed)
{
    return transposed ? wk_transpose(b, 0, -1) : b;
}

static wk_tensor *gc_apply(wk_tensor *const *in, int n, void *u)
{
    const gc_ctx *c = u;
    wk_tensor *v[4];
    for (int k = 0; k < n; k++)
        v[k] = view_of(in[k], c->transposed[k]);
    return c->op(v, n, c->user);
}

/* Gradcheck op at the float64 bases (contiguous; a transposed base is given in its
 * transposed shape). */
static int check(op_fn op, const void *user, wk_tensor *const *base, int n,
                 const bool *transposed)
{
    gc_ctx c = {.op = op, .user = user};
    for (int k = 0; k < n; k++)
        c.transposed[k] = transposed && transposed[k];
    return wk_gradcheck(gc_apply, &c, base, n, 1e-6, 1e-7, 1e-5);
}

static wk_tensor *randu(const int64_t *shape, int nd, double lo, double hi, uint64_t seed)
{
    wk_generator g = wk_generator_make(seed);
    return wk_uniform_(wk_empty(shape, nd, WK_DTYPE_F64), lo, hi, &g);
}

/* ---- fixed inputs; expected values from PyTorch ----
 * Produced with torch 1.13 (/usr/bin/python3, float64), e.g.
 *   F.cross_entropy(X, Ti, weight=W, label_smoothing=0.2)
 * for the X, T, W, ... below; the expected numbers are printed with %.17g. */

static wk_tensor *X(wk_dtype dt)
{
    return wk_to_dtype(tu_f64(WK_SHAPE(3, 4), 1.5, -0.3, 0.2, 2.1, 0.0, 0.7, -1.2, 0.4, -2.0,
                              1.1, 0.5, 0.3),
                       dt);
}
static wk_tensor *W(wk_dtype dt) { return wk_to_dtype(tu_f64(WK_SHAPE(4), 0.5, 2, 1, 1.5), dt); }
static wk_tensor *probs(wk_dtype dt)
{
    return wk_to_dtype(tu_f64(WK_SHAPE(3, 4), 0.7, 0.1, 0.1, 0.1, 0.0, 0.25, 0.25, 0.5, 0.2,
                              0.2, 0.3, 0.3),
                       dt);
}
static wk_tensor *X3(void) /* (2, 3, 2) */
{
    return tu_f64(WK_SHAPE(2, 3, 2), 0.1, 1.2, -0.5, 0.3, 2.0, -1.0, 0.4, 0.4, 1.5, -0.2, 0.0,
                  0.9);
}
static wk_tensor *A(void) { return tu_f64(WK_SHAPE(2, 3), 0.5, -1.0, 2.0, 0.1, 3.0, -0.2); }
static wk_tensor *B(void) { return tu_f64(WK_SHAPE(2, 3), 0.2, -1.5, 2.0, 1.5, 0.5, -0.1); }
static wk_tensor *Tb(void) { return tu_f64(WK_SHAPE(2, 3), 1.0, 0.0, 0.3, 0.0, 1.0, 0.8); }

static wk_cross_entropy_opts ce_opts(wk_reduction red, int64_t ignore, double ls, wk_tensor *w)
{
    wk_cross_entropy_opts o = WK_CROSS_ENTROPY_DEFAULTS;
    o.reduction = red;
    o.ignore_index = ignore;
    o.label_smoothing = ls;
    o.weight = w;
    return o;
}

#define RT 1e-12 /* float64 results against torch's float64 */

Test(loss, cross_entropy_indices_reductions)
{
    wk_tensor *t = tu_i64(WK_SHAPE(3), 0, 3, 1);
    wk_tensor *m = wk_cross_entropy(X(WK_DTYPE_F64), t, NULL);
    expect_shape(m);
    cr_assert_eq(m->dtype, WK_DTYPE_F64);
    expect_values(m, RT, 1.0220831971676692);
    wk_cross_entropy_opts o = ce_opts(WK_REDUCTION_SUM, -100, 0, NULL);
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), t, &o), RT, 3.0662495915030075);
    o.reduction = WK_REDUCTION_NONE;
    wk_tensor *none = wk_cross_entropy(X(WK_DTYPE_F64), t, &o);
    expect_shape(none, 3);
    expect_values(none, RT, 1.1817116988309713, 1.1700256772826334, 0.71451221538940257);
    /* float32 and int32 targets */
    wk_tensor *f = wk_cross_entropy(X(WK_DTYPE_F32), wk_to_dtype(t, WK_DTYPE_I32), &o);
    cr_assert_eq(f->dtype, WK_DTYPE_F32);
    expect_values(f, 1e-6, 1.1817116988309713, 1.1700256772826334, 0.71451221538940257);
}

Test(loss, cross_entropy_weights_and_ignore_index)
{
    wk_tensor *t = tu_i64(WK_SHAPE(3), 0, 3, 1);
    wk_cross_entropy_opts o = ce_opts(WK_REDUCTION_MEAN, -100, 0, W(WK_DTYPE_F64));
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), t, &o), RT, 0.94372969902956028);
    o.reduction = WK_REDUCTION_NONE;
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), t, &o), RT, 0.59085584941548563,
                  1.7550385159239501, 1.4290244307788051);
    wk_tensor *ti = tu_i64(WK_SHAPE(3), 0, -100, 2);
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), ti, NULL), RT, 1.2481119571101869);
    o = ce_opts(WK_REDUCTION_NONE, -100, 0, NULL);
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), ti, &o), RT, 1.1817116988309713, 0,
                  1.3145122153894027);
    /* a custom ignore_index, weighted mean over the rest */
    o = ce_opts(WK_REDUCTION_MEAN, 1, 0, W(WK_DTYPE_F64));
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), tu_i64(WK_SHAPE(3), 1, 3, 1), &o), RT,
                  1.1700256772826334);
    /* every target ignored: mean is 0/0 as in torch */
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), tu_i64(WK_SHAPE(3), -100, -100, -100), NULL),
                  0, NAN);
}

Test(loss, cross_entropy_label_smoothing)
{
    wk_tensor *ti = tu_i64(WK_SHAPE(3), 0, -100, 2);
    wk_cross_entropy_opts o = ce_opts(WK_REDUCTION_MEAN, -100, 0.2, NULL);
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), ti, &o), RT, 1.3631119571101871);
    o.weight = W(WK_DTYPE_F64);
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), ti, &o), RT, 1.5772336202660029);
    o.reduction = WK_REDUCTION_SUM;
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), ti, &o), RT, 2.3658504303990044);
    o.reduction = WK_REDUCTION_NONE;
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), ti, &o), RT, 0.96811260424013135, 0,
                  1.3977378261588727);
    /* the gradient of the weighted, smoothed mean */
    o.reduction = WK_REDUCTION_MEAN;
    wk_tensor *x = wk_requires_grad_(X(WK_DTYPE_F64), true);
    cr_assert_eq(wk_backward(wk_cross_entropy(x, ti, &o)), 0, "%s", wk_last_error());
    expect_values(x->grad, 1e-11, -0.15040693807075337, -0.044694081314459025,
                  0.0028933355091254583, 0.19220768387608686, 0, 0, 0, 0,
                  -0.0012327399530113431, 0.27593488660439491, -0.37864294768762063,
                  0.10394080103623718);
    /* float32 */
    wk_tensor *x32 = wk_requires_grad_(X(WK_DTYPE_F32), true);
    o.weight = W(WK_DTYPE_F32);
    wk_tensor *l32 = wk_cross_entropy(x32, ti, &o);
    expect_values(l32, 1e-6, 1.5772336202660029);
    cr_assert_eq(wk_backward(l32), 0, "%s", wk_last_error());
    expect_values(x32->grad, 1e-5, -0.15040693807075337, -0.044694081314459025,
                  0.0028933355091254583, 0.19220768387608686, 0, 0, 0, 0,
                  -0.0012327399530113431, 0.27593488660439491, -0.37864294768762063,
                  0.10394080103623718);
}

Test(loss, cross_entropy_probabilities)
{
    wk_cross_entropy_opts o = ce_opts(WK_REDUCTION_MEAN, -100, 0, NULL);
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), probs(WK_DTYPE_F64), &o), RT,
                  1.5604165305010023);
    o.reduction = WK_REDUCTION_SUM;
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), probs(WK_DTYPE_F64), &o), RT,
                  4.6812495915030068);
    o.reduction = WK_REDUCTION_NONE;
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), probs(WK_DTYPE_F64), &o), RT,
                  1.4317116988309713, 1.4950256772826334, 1.7545122153894026);
    o = ce_opts(WK_REDUCTION_NONE, -100, 0.3, W(WK_DTYPE_F64));
    expect_values(wk_cross_entropy(X(WK_DTYPE_F64), probs(WK_DTYPE_F64), &o), RT,
                  1.6849004384069581, 1.9322865901277524, 1.7393902692367531);
    o.reduction = WK_REDUCTION_MEAN;
    wk_tensor *x = wk_requires_grad_(X(WK_DTYPE_F64), true);
    wk_tensor *p = wk_requires_grad_(probs(WK_DTYPE_F64), true);
    wk_tensor *l = wk_cross_entropy(x, p, &o);
    expect_values(l, RT, 1.7855257659238213);
    cr_assert_eq(wk_backward(l), 0, "%s", wk_last_error());
    expect_values(x->grad, 1e-11, 0.0014380868491120282, -0.08086330720180962,
                  -0.022277998435103349, 0.10170321878780095, 0.086318924185561821,
                  0.03233020946132821, -0.05356964534125138, -0.065079488305638616,
                  -0.026646472194252781, 0.060596162661346147, 0.016918880344670238,
                  -0.050868570811763582);
    expect_values(p->grad, 1e-11, 0.13786636486361331, 1.3914654594544531, 0.57906606306055997,
                  0.20359909459083991, 0.18316966234964052, 0.40601198273189548,
                  0.6463393246992809, 0.40950898704892169, 0.44502642512876361,
                  0.33343903384838786, 0.30671951692419391, 0.53007927538629085);
}

Test(loss, cross_entropy_spatial_and_unbatched)
{
    wk_tensor *t3 = tu_i64(WK_SHAPE(2, 2), 2, 0, 1, -100);
    wk_cross_entropy_opts o = ce_opts(WK_REDUCTION_NONE, -100, 0, NULL);
    wk_tensor *none = wk_cross_entropy(X3(), t3, &o);
    expect_shape(none, 2, 2);
    expect_values(none, RT, 0.2083576712346894, 0.41698043029291237, 0.44211922514309721, 0);
    o = ce_opts(WK_REDUCTION_MEAN, -100, 0.1, wk_narrow(W(WK_DTYPE_F64), 0, 0, 3));
    wk_tensor *x = wk_requires_grad_(X3(), true);
    wk_tensor *l = wk_cross_entropy(x, t3, &o);
    expect_values(l, RT, 0.48443268317491073);
    cr_assert_eq(wk_backward(l), 0, "%s", wk_last_error());
    expect_values(x->grad, 1e-11, 0.030512722858267925, -0.026632620118251318,
                  0.00031150704921545575, 0.024333653618316114, -0.030824229907483364,
                  0.0022989664999351796, 0.11238873798696705, 0, -0.18139335270368612, 0,
                  0.069004614716718982, 0);
    /* (C) logits with a 0-d target */
    wk_tensor *u = wk_cross_entropy(wk_select(X(WK_DTYPE_F64), 0, 1), wk_scalar(2, WK_DTYPE_I64),
                                    NULL);
    expect_shape(u);
    expect_values(u, RT, 2.770025677282633);
    /* non-contiguous logits: the transpose of a (C, N) tensor */
    wk_tensor *xt = wk_transpose(wk_contiguous(wk_transpose(X(WK_DTYPE_F64), 0, 1)), 0, 1);
    cr_assert_not(wk_is_contiguous(xt));
    expect_values(wk_cross_entropy(xt, tu_i64(WK_SHAPE(3), 0, 3, 1), NULL), RT,
                  1.0220831971676692);
}

Test(loss, nll_loss_values)
{
    wk_tensor *lp = tu_f64(WK_SHAPE(3, 4), -1.1817116988309713, -2.9817116988309711,
                           -2.4817116988309715, -0.58171169883097118, -1.5700256772826333,
                           -0.87002567728263336, -2.770025677282633, -1.1700256772826334,
                           -3.8145122153894029, -0.71451221538940257, -1.3145122153894027,
                           -1.5145122153894026);
    expect_values(wk_nll_loss(lp, tu_i64(WK_SHAPE(3), 0, 3, 1), NULL), RT, 1.0220831971676692);
    wk_nll_loss_opts o = WK_NLL_LOSS_DEFAULTS;
    o.weight = W(WK_DTYPE_F64);
    wk_tensor *ti = tu_i64(WK_SHAPE(3), 0, -100, 2);
    expect_values(wk_nll_loss(lp, ti, &o), RT, 1.2702453765365922);
    o.reduction = WK_REDUCTION_NONE;
    expect_values(wk_nll_loss(lp, ti, &o), RT, 0.59085584941548563, 0, 1.3145122153894027);
    /* gradient: -w[t] / sum(w[t]) at the targets */
    o.reduction = WK_REDUCTION_MEAN;
    wk_tensor *x = wk_requires_grad_(lp, true);
    cr_assert_eq(wk_backward(wk_nll_loss(x, ti, &o)), 0, "%s", wk_last_error());
    expect_values(x->grad, 1e-15, -0.5 / 1.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1 / 1.5, 0);
}

Test(loss, pointwise_values)
{
    expect_values(wk_mse_loss(A(), B(), WK_REDUCTION_MEAN), RT, 1.4266666666666665);
    expect_values(wk_mse_loss(A(), B(), WK_REDUCTION_SUM), RT, 8.5599999999999987);
    expect_values(wk_mse_loss(A(), B(), WK_REDUCTION_NONE), RT, 0.089999999999999997, 0.25, 0,
                  1.9599999999999997, 6.25, 0.010000000000000002);
    expect_values(wk_l1_loss(A(), B(), WK_REDUCTION_MEAN), RT, 0.79999999999999993);
    expect_values(wk_l1_loss(A(), B(), WK_REDUCTION_SUM), RT, 4.7999999999999998);
    expect_values(wk_l1_loss(A(), B(), WK_REDUCTION_NONE), RT, 0.29999999999999999, 0.5, 0,
                  1.3999999999999999, 2.5, 0.10000000000000001);
    expect_values(wk_smooth_l1_loss(A(), B(), WK_REDUCTION_MEAN, 0.6), RT, 0.59861111111111109);
    expect_values(wk_smooth_l1_loss(A(), B(), WK_REDUCTION_SUM, 0.6), RT, 3.5916666666666668);
    expect_values(wk_smooth_l1_loss(A(), B(), WK_REDUCTION_NONE, 0.6), RT, 0.074999999999999997,
                  0.20833333333333334, 0, 1.0999999999999999, 2.2000000000000002,
                  0.008333333333333335);
    expect_values(wk_smooth_l1_loss(A(), B(), WK_REDUCTION_MEAN, 0), RT, 0.79999999999999993);
    wk_tensor *a = wk_requires_grad_(A(), true);
    cr_assert_eq(wk_backward(wk_smooth_l1_loss(a, B(), WK_REDUCTION_MEAN, 0.6)), 0);
    expect_values(a->grad, 1e-14, 0.083333333333333329, 0.1388888888888889, 0,
                  -0.16666666666666666, 0.16666666666666666, -0.02777777777777778);
    /* float32 */
    wk_tensor *m32 = wk_mse_loss(wk_to_dtype(A(), WK_DTYPE_F32), wk_to_dtype(B(), WK_DTYPE_F32),
                                 WK_REDUCTION_MEAN);
    cr_assert_eq(m32->dtype, WK_DTYPE_F32);
    expect_values(m32, 1e-6, 1.4266666666666665);
}

Test(loss, bce_with_logits_values)
{
    expect_values(wk_binary_cross_entropy_with_logits(A(), Tb(), WK_REDUCTION_MEAN, NULL), RT,
                  0.64423159396170115);
    expect_values(wk_binary_cross_entropy_with_logits(A(), Tb(), WK_REDUCTION_SUM, NULL), RT,
                  3.8653895637702069);
    expect_values(wk_binary_cross_entropy_with_logits(A(), Tb(), WK_REDUCTION_NONE, NULL), RT,
                  0.47407698418010669, 0.31326168751822286, 1.5269280110429726,
                  0.74439666007357086, 0.048587351573741965, 0.75813886938159181);
    wk_tensor *pw = tu_f64(WK_SHAPE(3), 2.0, 0.5, 1.5);
    expect_values(wk_binary_cross_entropy_with_logits(A(), Tb(), WK_REDUCTION_NONE, pw), RT,
                  0.94815396836021337, 0.31326168751822281, 1.5459672126994184,
                  0.74439666007357086, 0.024293675786870982, 1.0773944171342285);
    wk_tensor *a = wk_requires_grad_(A(), true), *t = wk_requires_grad_(Tb(), true);
    cr_assert_eq(wk_backward(wk_binary_cross_entropy_with_logits(a, t, WK_REDUCTION_MEAN, pw)),
                 0, "%s", wk_last_error());
    expect_values(a->grad, 1e-12, -0.12584688959938181, 0.04482357022833252,
                  0.093819439945760766, 0.087496531246489997, -0.0039521560981305532,
                  -0.094961266039578177);
    expect_values(t->grad, 1e-12, -0.0043205026366488859, 0.057228192706814757,
                  -0.32275599907975233, 0.090732776678928484, -0.50404894596447847,
                  0.099844905781799331);
}

Test(loss, huge_logits_stay_finite)
{
    /* torch: cross_entropy(H, [1, 0], reduction='none') = [20000, 0.6931472], grad of
     * the mean [[0.5, -0.5, 0], [-0.25, 0.25, 0]] */
    for (int dt = 0; dt < 2; dt++) {
        wk_dtype d = dt ? WK_DTYPE_F64 : WK_DTYPE_F32;
        wk_tensor *h = wk_to_dtype(tu_f64(WK_SHAPE(2, 3), 1e4, -1e4, 0, 5e3, 5e3, -1e4), d);
        wk_tensor *t = tu_i64(WK_SHAPE(2), 1, 0);
        wk_cross_entropy_opts o = ce_opts(WK_REDUCTION_NONE, -100, 0, NULL);
        expect_values(wk_cross_entropy(h, t, &o), 1e-6, 20000, 0.69314718246459961);
        wk_requires_grad_(h, true);
        o = ce_opts(WK_REDUCTION_MEAN, -100, 0.1, NULL);
        wk_tensor *l = wk_cross_entropy(h, t, &o);
        cr_assert(isfinite(wk_item(l)));
        cr_assert_eq(wk_backward(l), 0, "%s", wk_last_error());
        for (int i = 0; i < 6; i++)
            cr_assert(isfinite(tu_at(h->grad, i)), "grad[%d] = %g", i, tu_at(h->grad, i));
        wk_zero_grad(&h, 1);
        o.label_smoothing = 0;
        cr_assert_eq(wk_backward(wk_cross_entropy(h, t, &o)), 0);
        expect_values(h->grad, 1e-6, 0.5, -0.5, 0, -0.25, 0.25, 0);
        /* probabilities with zeros where the logits are -1e4 */
        wk_tensor *p = wk_to_dtype(tu_f64(WK_SHAPE(2, 3), 1, 0, 0, 0.5, 0.5, 0), d);
        wk_tensor *lp = wk_cross_entropy(h, p, NULL);
        cr_assert(isfinite(wk_item(lp)), "%g", wk_item(lp));
        /* bce: torch gives [10000, 10000, 40] */
        wk_tensor *b = wk_requires_grad_(wk_to_dtype(tu_f64(WK_SHAPE(3), 1e4, -1e4, 80), d), true);
        wk_tensor *bl = wk_binary_cross_entropy_with_logits(
            b, wk_to_dtype(tu_f64(WK_SHAPE(3), 0, 1, 0.5), d), WK_REDUCTION_NONE, NULL);
        expect_values(bl, 1e-6, 10000, 10000, 40);
        cr_assert_eq(wk_backward_ex(bl, wk_ones_like(bl), false), 0);
        expect_values(b->grad, 1e-6, 1, -1, 0.5);
    }
}

/* ---- gradchecks ---- */

typedef struct {
    wk_loss_op op;
    wk_tensor *target; /* class indices, or NULL: the target is input 1 */
    wk_cross_entropy_opts ce;
    wk_reduction red;
    double beta;
    wk_tensor *pos_weight;
} lcase;

static wk_tensor *loss_op(wk_tensor *const *x, int n, const void *user)
{
    (void)n;
    const lcase *c = user;
    wk_tensor *t = c->target ? c->target : x[1];
    switch (c->op) {
    case WK_LOSS_CROSS_ENTROPY: return wk_cross_entropy(x[0], t, &c->ce);
    case WK_LOSS_NLL: {
        wk_nll_loss_opts o = {c->ce.reduction, c->ce.ignore_index, c->ce.weight};
        return wk_nll_loss(x[0], t, &o);
    }
    case WK_LOSS_MSE: return wk_mse_loss(x[0], t, c->red);
    case WK_LOSS_L1: return wk_l1_loss(x[0], t, c->red);
    case WK_LOSS_SMOOTH_L1: return wk_smooth_l1_loss(x[0], t, c->red, c->beta);
    default: return wk_binary_cross_entropy_with_logits(x[0], t, c->red, c->pos_weight);
    }
}

Test(loss, gradcheck_class_losses)
{
    wk_tensor *w4 = randu(WK_SHAPE(4), 0.2, 2, 5), *w3 = randu(WK_SHAPE(3), 0.2, 2, 6);
    wk_tensor *t2 = tu_i64(WK_SHAPE(5), 0, 3, -100, 1, 3);
    wk_tensor *t3 = tu_i64(WK_SHAPE(2, 2, 2), 2, 0, 1, -100, 0, 0, 2, 1);
    int checked = 0;
    for (int op = 0; op < 2; op++)
        for (int red = 0; red < 3; red++)
            for (int ls = 0; ls < 2; ls++)
                for (int wt = 0; wt < 2; wt++)
                    for (int shape = 0; shape < 3; shape++) {
                        if (op == WK_LOSS_NLL && ls) continue;
                        lcase c = {.op = (wk_loss_op)op};
                        c.ce = ce_opts((wk_reduction)red, -100, ls ? 0.3 : 0, NULL);
                        wk_tensor *x;
                        bool tr = false;
                        if (shape == 2) { /* (N, C, d1, d2) */
                            x = randu(WK_SHAPE(2, 3, 2, 2), -3, 3, 10 + red);
                            c.target = t3;
                            c.ce.weight = wt ? w3 : NULL;
                        } else { /* (N, C); shape 1: the logits are transposed */
                            tr = shape == 1;
                            x = tr ? randu(WK_SHAPE(4, 5), -3, 3, 20 + red)
                                   : randu(WK_SHAPE(5, 4), -3, 3, 20 + red);
                            c.target = t2;
                            c.ce.weight = wt ? w4 : NULL;
                        }
                        int rc = check(loss_op, &c, &x, 1, &tr);
                        cr_assert_eq(rc, 0, "%s red %d ls %d weight %d shape %d: %s",
                                     wk_loss_name(c.op), red, ls, wt, shape, wk_last_error());
                        checked++;
                    }
    /* probability targets: gradients of logits and targets */
    for (int red = 0; red < 3; red++)
        for (int ls = 0; ls < 2; ls++)
            for (int wt = 0; wt < 2; wt++)
                for (int spatial = 0; spatial < 2; spatial++) {
                    lcase c = {.op = WK_LOSS_CROSS_ENTROPY};
                    c.ce = ce_opts((wk_reduction)red, -100, ls ? 0.25 : 0, NULL);
                    wk_tensor *in[2];
                    if (spatial) {
                        in[0] = randu(WK_SHAPE(2, 3, 2), -3, 3, 30);
                        in[1] = randu(WK_SHAPE(2, 3, 2), 0, 1, 31);
                        c.ce.weight = wt ? w3 : NULL;
                    } else {
                        in[0] = randu(WK_SHAPE(3, 4), -3, 3, 32);
                        in[1] = randu(WK_SHAPE(3, 4), 0, 1, 33);
                        c.ce.weight = wt ? w4 : NULL;
                    }
                    int rc = check(loss_op, &c, in, 2, NULL);
                    cr_assert_eq(rc, 0, "cross_entropy (probabilities) red %d ls %d weight %d "
                                 "spatial %d: %s",
                                 red, ls, wt, spatial, wk_last_error());
                    checked++;
                }
    cr_assert_eq(checked, 3 * 2 * 2 * 3 + 3 * 2 * 3 + 24);
}

Test(loss, gradcheck_pointwise_losses)
{
    wk_tensor *pw = randu(WK_SHAPE(4), 0.3, 3, 40);
    for (int op = WK_LOSS_MSE; op <= WK_LOSS_BCE_WITH_LOGITS; op++)
        for (int red = 0; red < 3; red++)
            for (int tr = 0; tr < 2; tr++)
                for (int p = 0; p < (op == WK_LOSS_BCE_WITH_LOGITS ? 2 : 1); p++) {
                    lcase c = {.op = (wk_loss_op)op, .red = (wk_reduction)red, .beta = 0.7,
                               .pos_weight = p ? pw : NULL};
                    wk_tensor *in[2] = {tr ? randu(WK_SHAPE(4, 3), -3, 3, 41)
                                           : randu(WK_SHAPE(3, 4), -3, 3, 41),
                                        op == WK_LOSS_BCE_WITH_LOGITS
                                            ? randu(WK_SHAPE(3, 4), 0, 1, 42)
                                            : randu(WK_SHAPE(3, 4), -3, 3, 42)};
                    int rc = check(loss_op, &c, in, 2, (const bool[]){tr, false});
                    cr_assert_eq(rc, 0, "%s red %d transposed %d pos_weight %d: %s",
                                 wk_loss_name(c.op), red, tr, p, wk_last_error());
                }
}

Test(loss, only_needed_gradients)
{
    wk_tensor *x = wk_requires_grad_(X(WK_DTYPE_F64), true), *p = probs(WK_DTYPE_F64);
    wk_tensor *l = wk_cross_entropy(x, p, NULL);
    cr_assert_str_eq(l->grad_fn->op, "cross_entropy");
    cr_assert_eq(wk_backward(l), 0, "%s", wk_last_error());
    cr_assert_null(p->grad);
    wk_tensor *t = wk_requires_grad_(Tb(), true), *a = A();
    cr_assert_eq(wk_backward(wk_mse_loss(a, t, WK_REDUCTION_SUM)), 0);
    cr_assert_null(a->grad);
    expect_values(t->grad, 1e-15, 1, 2, -3.4, -0.2, -4, 2); /* -2 (a - t) */
    wk_no_grad_begin();
    cr_assert_not(wk_cross_entropy(x, tu_i64(WK_SHAPE(3), 0, 1, 2), NULL)->requires_grad);
    wk_no_grad_end();
}

/* ---- large inputs (parallel paths) against naive double loops ---- */

static double naive_ce_row(const double *x, int64_t C, int64_t st, int64_t t, double ls)
{
    double m = -INFINITY, s = 0, sum_lp = 0;
    for (int64_t c = 0; c < C; c++)
        m = fmax(m, x[c * st]);
    for (int64_t c = 0; c < C; c++)
        s += exp(x[c * st] - m);
    double lse = m + log(s);
    for (int64_t c = 0; c < C; c++)
        sum_lp += x[c * st] - lse;
    return -(1 - ls) * (x[t * st] - lse) - ls / (double)C * sum_lp;
}

Test(loss, cross_entropy_large_against_naive)
{
    for (int dt = 0; dt < 2; dt++)
        for (int spatial = 0; spatial < 2; spatial++) {
            wk_frame_begin();
            wk_dtype d = dt ? WK_DTYPE_F64 : WK_DTYPE_F32;
            int64_t N = spatial ? 20 : 1000, C = spatial ? 37 : 1001, S = spatial ? 301 : 1;
            wk_generator g = wk_generator_make(5);
            wk_tensor *x64 = spatial ? wk_randn(WK_SHAPE(N, C, S), WK_DTYPE_F64, &g)
                                     : wk_randn(WK_SHAPE(N, C), WK_DTYPE_F64, &g);
            wk_tensor *x = wk_requires_grad_(wk_to_dtype(wk_mul_scalar(x64, 4), d), true);
            wk_tensor *t = spatial ? wk_randint(0, C, WK_SHAPE(N, S), &g)
                                   : wk_randint(0, C, WK_SHAPE(N), &g);
            wk_cross_entropy_opts o = ce_opts(WK_REDUCTION_NONE, 3, 0.1, NULL);
            wk_tensor *l = wk_cross_entropy(x, t, &o);
            cr_assert_not_null(l, "%s", wk_last_error());
            wk_tensor *xd = wk_to_dtype(x, WK_DTYPE_F64);
            const double *px = wk_data(xd), *pl = wk_data(wk_to_dtype(l, WK_DTYPE_F64));
            const int64_t *pt = wk_data(t);
            double tol = dt ? 1e-12 : 2e-5;
            for (int64_t r = 0; r < N * S; r++) {
                double want = pt[r] == 3 ? 0
                                         : naive_ce_row(px + r / S * C * S + r % S, C, S, pt[r],
                                                        0.1);
                cr_assert(fabs(pl[r] - want) <= tol * (1 + fabs(want)),
                          "%s spatial %d row %lld: %.9g, expected %.9g", wk_dtype_name(d),
                          spatial, (long long)r, pl[r], want);
            }
            /* gradient of the sum: softmax - smoothed one-hot per row */
            cr_assert_eq(wk_backward_ex(l, wk_ones_like(l), false), 0, "%s", wk_last_error());
            const double *pg = wk_data(wk_to_dtype(x->grad, WK_DTYPE_F64));
            for (int64_t r = 0; r < N * S; r += 7) {
                const double *xr = px + r / S * C * S + r % S;
                const double *gr = pg + r / S * C * S + r % S;
                double m = -INFINITY, s = 0;
                for (int64_t c = 0; c < C; c++)
                    m = fmax(m, xr[c * S]);
                for (int64_t c = 0; c < C; c++)
                    s += exp(xr[c * S] - m);
                for (int64_t c = 0; c < C; c++) {
                    double want = pt[r] == 3 ? 0
                                             : exp(xr[c * S] - m) / s - 0.1 / (double)C -
                                                   (c == pt[r] ? 0.9 : 0);
                    cr_assert(fabs(gr[c * S] - want) <= tol * 10,
                              "%s spatial %d grad row %lld class %lld: %.9g, expected %.9g",
                              wk_dtype_name(d), spatial, (long long)r, (long long)c,
                              gr[c * S], want);
                }
            }
            wk_frame_end();
        }
}

Test(loss, pointwise_large_against_naive_and_deterministic)
{
    int64_t n = 1000 * 1001;
    wk_generator g = wk_generator_make(8);
    wk_tensor *a = wk_randn(WK_SHAPE(1000, 1001), WK_DTYPE_F64, &g);
    wk_tensor *b = wk_rand(WK_SHAPE(1000, 1001), WK_DTYPE_F64, &g);
    const double *pa = wk_data(a), *pb = wk_data(b);
    long double s[4] = {0};
    for (int64_t i = 0; i < n; i++) {
        double d = pa[i] - pb[i];
        s[0] += d * d;
        s[1] += fabs(d);
        s[2] += fabs(d) < 0.5 ? d * d : fabs(d) - 0.25; /* beta 0.5 */
        s[3] += (1 - pb[i]) * pa[i] + log1p(exp(-fabs(pa[i]))) + fmax(-pa[i], 0);
    }
    wk_tensor *got[4] = {wk_mse_loss(a, b, WK_REDUCTION_MEAN), wk_l1_loss(a, b, WK_REDUCTION_MEAN),
                         wk_smooth_l1_loss(a, b, WK_REDUCTION_MEAN, 0.5),
                         wk_binary_cross_entropy_with_logits(a, b, WK_REDUCTION_MEAN, NULL)};
    for (int k = 0; k < 4; k++)
        cr_assert(fabs(wk_item(got[k]) - (double)(s[k] / n)) <= 1e-12 * (double)(s[k] / n),
                  "loss %d: %.17g, expected %.17g", k, wk_item(got[k]), (double)(s[k] / n));
    /* same bits with 1 thread and with several, and for float32 */
    wk_tensor *af = wk_to_dtype(a, WK_DTYPE_F32), *bf = wk_to_dtype(b, WK_DTYPE_F32);
    int saved = wk_get_num_threads();
    wk_tensor *labels = wk_randint(0, 1001, WK_SHAPE(1000), &g);
    double v[2][3];
    for (int t = 0; t < 2; t++) {
        wk_set_num_threads(t ? 3 : 1);
        v[t][0] = wk_item(wk_mse_loss(af, bf, WK_REDUCTION_SUM));
        v[t][1] = wk_item(wk_cross_entropy(af, labels, NULL));
        v[t][2] = wk_item(wk_binary_cross_entropy_with_logits(af, bf, WK_REDUCTION_MEAN, NULL));
    }
    wk_set_num_threads(saved);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(v[0][k], v[1][k], "result %d depends on the thread count", k);
    cr_assert(fabs(v[0][0] - (double)s[0]) <= 1e-5 * (double)s[0]);
}

Test(loss, empty_inputs)
{
    wk_tensor *x = wk_zeros(WK_SHAPE(0, 4), WK_DTYPE_F64);
    wk_tensor *t = wk_zeros(WK_SHAPE(0), WK_DTYPE_I64);
    cr_assert(isnan(wk_item(wk_cross_entropy(x, t, NULL))));
    wk_cross_entropy_opts o = ce_opts(WK_REDUCTION_SUM, -100, 0, NULL);
    expect_values(wk_cross_entropy(x, t, &o), 0, 0);
    o.reduction = WK_REDUCTION_NONE;
    expect_shape(wk_cross_entropy(x, t, &o), 0);
    expect_values(wk_mse_loss(x, x, WK_REDUCTION_SUM), 0, 0);
    cr_assert(isnan(wk_item(wk_l1_loss(x, x, WK_REDUCTION_MEAN))));
}

Test(loss, graph_memory_released)
{
    wk_tensor *w = wk_requires_grad_(wk_ones(WK_SHAPE(8, 5), WK_DTYPE_F32), true);
    wk_tensor *t = wk_keep(tu_i64(WK_SHAPE(8), 0, 1, 2, 3, 4, 0, 1, 2));
    wk_alloc_stats a = {0};
    for (int i = 0; i < 6; i++) {
        if (i == 3) a = wk_alloc_get_stats();
        wk_frame_begin();
        wk_cross_entropy_opts o = ce_opts(WK_REDUCTION_MEAN, -100, 0.1, NULL);
        cr_assert_eq(wk_backward(wk_cross_entropy(w, t, &o)), 0, "%s", wk_last_error());
        cr_assert_eq(wk_backward(wk_mse_loss(w, wk_zeros_like(w), WK_REDUCTION_MEAN)), 0);
        wk_binary_cross_entropy_with_logits(w, wk_zeros_like(w), WK_REDUCTION_SUM, NULL);
        wk_frame_end();
    }
    wk_alloc_stats b = wk_alloc_get_stats();
    cr_assert_eq(a.bytes_in_use, b.bytes_in_use, "graph memory released");
    wk_tensor_free(t);
}

/* ---- errors ---- */

Test(loss, errors)
{
    wk_tensor *x = X(WK_DTYPE_F64), *t = tu_i64(WK_SHAPE(3), 0, 3, 1);
    expect_error(wk_cross_entropy(x, tu_i64(WK_SHAPE(3), 0, 4, 1), NULL),
                 "cross_entropy: target 4 (at flat position 1) is out of range for 4 classes");
    expect_error(wk_cross_entropy(x, tu_i64(WK_SHAPE(3), 0, -1, 1), NULL), "target -1");
    expect_error(wk_nll_loss(x, tu_i64(WK_SHAPE(3), 0, 9, 1), NULL),
                 "nll_loss: target 9 (at flat position 1) is out of range for 4 classes");
    expect_error(wk_cross_entropy(x, tu_i64(WK_SHAPE(4), 0, 3, 1, 1), NULL),
                 "cross_entropy: target of shape [4] does not match logits of shape [3, 4]; "
                 "expected class indices of shape [3]");
    expect_error(wk_cross_entropy(x, probs(WK_DTYPE_F32), NULL),
                 "cross_entropy: target (probabilities) is float32 (shape [3, 4]) but the input "
                 "is float64");
    expect_error(wk_cross_entropy(x, wk_zeros(WK_SHAPE(4, 3), WK_DTYPE_F64), NULL),
                 "target probabilities of shape [4, 3] do not match logits of shape [3, 4]");
    expect_error(wk_cross_entropy(x, wk_zeros(WK_SHAPE(3), WK_DTYPE_U8), NULL),
                 "target must be int64 or int32 class indices or float probabilities, got "
                 "uint8");
    expect_error(wk_cross_entropy(wk_to_dtype(x, WK_DTYPE_I64), t, NULL),
                 "cross_entropy: input must be float32 or float64, got int64 (shape [3, 4])");
    expect_error(wk_cross_entropy(wk_to_dtype(x, WK_DTYPE_BF16), t, NULL),
                 "cross_entropy: input is bfloat16 (shape [3, 4]), a storage dtype; convert "
                 "with wk_to_dtype");
    expect_error(wk_cross_entropy(wk_scalar(1, WK_DTYPE_F64), t, NULL), "got a 0-d tensor");
    wk_cross_entropy_opts o = ce_opts(WK_REDUCTION_MEAN, -100, -0.1, NULL);
    expect_error(wk_cross_entropy(x, t, &o),
                 "cross_entropy: label_smoothing must be in [0, 1], got -0.1");
    o.label_smoothing = NAN;
    expect_error(wk_cross_entropy(x, t, &o), "label_smoothing must be in [0, 1], got nan");
    o = ce_opts(WK_REDUCTION_MEAN, -100, 0, tu_f64(WK_SHAPE(3), 1, 1, 1));
    expect_error(wk_cross_entropy(x, t, &o),
                 "cross_entropy: weight of shape [3] does not match 4 classes of logits of "
                 "shape [3, 4]; expected shape [4]");
    o.weight = W(WK_DTYPE_F32);
    expect_error(wk_cross_entropy(x, t, &o), "weight is float32 (shape [4]) but the input is "
                                             "float64");
    o = ce_opts((wk_reduction)7, -100, 0, NULL);
    expect_error(wk_cross_entropy(x, t, &o), "cross_entropy: invalid reduction 7");
    expect_error(wk_nll_loss(x, probs(WK_DTYPE_F64), NULL),
                 "nll_loss: target must hold int64 or int32 class indices of shape [3], got "
                 "float64");
    expect_error(wk_cross_entropy(wk_zeros(WK_SHAPE(2, 0), WK_DTYPE_F64),
                                  tu_i64(WK_SHAPE(2), 0, 0), NULL),
                 "has no classes");
    /* point-wise */
    expect_error(wk_mse_loss(A(), wk_zeros(WK_SHAPE(3), WK_DTYPE_F64), WK_REDUCTION_MEAN),
                 "mse_loss: input of shape [2, 3] and target of shape [3] differ");
    expect_error(wk_l1_loss(A(), wk_to_dtype(B(), WK_DTYPE_F32), WK_REDUCTION_MEAN),
                 "l1_loss: target is float32 (shape [2, 3]) but the input is float64");
    expect_error(wk_mse_loss(A(), wk_to_dtype(B(), WK_DTYPE_I32), WK_REDUCTION_MEAN),
                 "mse_loss: target must be float32 or float64, got int32");
    expect_error(wk_smooth_l1_loss(A(), B(), WK_REDUCTION_MEAN, -1),
                 "smooth_l1_loss: beta must be >= 0, got -1");
    expect_error(wk_binary_cross_entropy_with_logits(A(), Tb(), WK_REDUCTION_MEAN,
                                                     tu_f64(WK_SHAPE(2), 1, 1)),
                 "binary_cross_entropy_with_logits: pos_weight of shape [2] does not broadcast "
                 "to the input's shape [2, 3]");
    expect_error(wk_mse_loss(A(), B(), (wk_reduction)-1), "mse_loss: invalid reduction -1");
    expect_error(wk_loss(WK_LOSS_COUNT, &(wk_loss_args){0}), "loss: invalid op");
    expect_error(wk_loss(WK_LOSS_MSE, NULL), "mse_loss: args is NULL");
    /* a NULL input keeps the first message */
    wk_clear_error();
    wk_set_error("earlier failure");
    cr_assert_null(wk_cross_entropy(NULL, t, NULL));
    cr_assert_str_eq(wk_last_error(), "earlier failure");
    cr_assert_null(wk_mse_loss(A(), NULL, WK_REDUCTION_SUM));
    cr_assert_str_eq(wk_last_error(), "earlier failure");
    cr_assert_str_eq(wk_loss_name(WK_LOSS_SMOOTH_L1), "smooth_l1_loss");
    cr_assert_str_eq(wk_loss_name(WK_LOSS_COUNT), "?");
}
