/* Losses: the family front-end (validation, output, autograd record), the backward
 * functions, and the CPU kernels, found through a per-device table.
 *
 * Class losses (cross_entropy, nll_loss) see the input as rows: (N, C, S) with
 * S = prod(d1, ...), row r = (n, s) holding the C classes at stride S. Per row the forward
 * kernel writes the loss and what the reduction and backward need (log-sum-exp, the
 * target's weight); sums over rows are serial in double, so results never depend on the
 * thread count. Point-wise losses reduce in fixed blocks of PW_BLOCK elements whose
 * partial sums are combined in order. */
#include <math.h>
#include <string.h>

#include "../autograd/node-impl.h"
#include "../tensor/profiler-impl.h"
#include "../tensor/cpu/reduce-impl.h"
#include "loss.h"

#define GRAIN 32768   /* elements of work per thread below which loops stay serial */
#define PW_BLOCK 4096 /* elements per partial sum of the point-wise losses */
#define CHUNK 64      /* exps computed together (a loop that vectorises) */

/* ---- kernel interface ---- */

/* A class loss over rows: inputs, per-row results, and for backward the per-row output
 * gradient and the gradient buffers (contiguous, the input's layout). */
typedef struct {
    int64_t C, S, R;
    bool probs;             /* targets are probabilities (tp) rather than indices (ti) */
    double ls, W;           /* label smoothing; sum of the class weights (C without) */
    int64_t ignore;
    const void *x, *w, *tp; /* logits / log-probs, weights (NULL: all 1), probabilities */
    const int64_t *ti;
    double *stats;          /* R x 2: log-sum-exp; weight of the target (probs: sum w t') */
    double *loss;           /* R per-row losses */
    const double *g;        /* backward: R per-row output gradients */
    void *gx, *gt;          /* backward: input and target gradients, or NULL */
} class_ctx;

/* A point-wise loss over n elements of a, b (and pos_weight pw, all contiguous). */
typedef struct {
    int64_t n;
    double beta;
    const void *a, *b, *pw;
    void *out;         /* forward, reduction NONE: the per-element losses */
    double *partial;   /* forward, SUM/MEAN: one sum per block of PW_BLOCK elements */
    const void *g;     /* backward: the output gradient is g[i * gst] * gscale */
    int64_t gst;
    double gscale;
    void *ga, *gb;     /* backward: gradients of a and b, or NULL */
} pw_ctx;

typedef struct {
    void (*class_forward)(wk_loss_op op, wk_dtype dt, const class_ctx *k);
    void (*class_backward)(wk_loss_op op, wk_dtype dt, const class_ctx *k);
    void (*pw_forward)(wk_loss_op op, wk_dtype dt, const pw_ctx *k);
    void (*pw_backward)(wk_loss_op op, wk_dtype dt, const pw_ctx *k);
} loss_kernels;

/* ---- CPU kernels: class losses ---- */

static inline double join8(const double *l)
{
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/* Sum of the expression E (of c) for c in [0, n), element c in lane c % 8. */
#define LANE_SUM(res, n, E)                                                             \
    do {                                                                                \
        double l_[8] = {0};                                                             \
        int64_t n_ = (n), c8_ = 0;                                                      \
        for (; c8_ + 8 <= n_; c8_ += 8)                                                 \
            for (int q_ = 0; q_ < 8; q_++) {                                            \
                int64_t c = c8_ + q_;                                                   \
                l_[q_] += (E);                                                          \
            }                                                                           \
        for (int q_ = 0; c8_ + q_ < n_; q_++) {                                         \
            int64_t c = c8_ + q_;                                                       \
            l_[q_] += (E);                                                              \
        }                                                                               \
        res = join8(l_);                                                                \
    } while (0)

#define CLASS_KERNELS(P, T, EXP)                                                        \
    static double P##_rowmax(const T *x, int64_t C, int64_t st)                         \
    {                                                                                   \
        T l[CHUNK];                                                                     \
        for (int k = 0; k < CHUNK; k++) l[k] = -INFINITY;                               \
        int64_t c = 0;                                                                  \
        if (st == 1)                                                                    \
            for (; c + CHUNK <= C; c += CHUNK)                                          \
                for (int k = 0; k < CHUNK; k++) l[k] = x[c + k] > l[k] ? x[c + k] : l[k]; \
        double m = -INFINITY;                                                           \
        for (int k = 0; k < CHUNK; k++) m = l[k] > m ? l[k] : m;                        \
        for (; c < C; c++) m = x[c * st] > m ? x[c * st] : m;                           \
        return m;                                                                       \
    }                                                                                   \
    /* sum of exp(x - m) */                                                             \
    static double P##_expsum(const T *x, int64_t C, int64_t st, T m)                    \
    {                                                                                   \
        T e[CHUNK];                                                                     \
        double l[8] = {0};                                                              \
        int64_t c = 0;                                                                  \
        for (; c + CHUNK <= C; c += CHUNK) {                                            \
            if (st == 1)                                                                \
                for (int k = 0; k < CHUNK; k++) e[k] = EXP(x[c + k] - m);               \
            else                                                                        \
                for (int k = 0; k < CHUNK; k++) e[k] = EXP(x[(c + k) * st] - m);        \
            for (int k = 0; k < CHUNK; k += 8)                                          \
                for (int q = 0; q < 8; q++) l[q] += (double)e[k + q];                   \
        }                                                                               \
        for (int q = 0; c < C; c++, q = (q + 1) & 7) l[q] += (double)EXP(x[c * st] - m); \
        return join8(l);                                                                \
    }                                                                                   \
    static void P##_ce_fwd_row(const class_ctx *k, int64_t r)                           \
    {                                                                                   \
        int64_t C = k->C, st = k->S, base = r / st * C * st + r % st;                   \
        const T *x = (const T *)k->x + base, *w = k->w;                                 \
        double m = P##_rowmax(x, C, st), sh = isfinite(m) ? m : 0;                      \
        double lse = log(P##_expsum(x, C, st, (T)sh)); /* relative to sh */             \
        k->stats[2 * r] = sh + lse;                                                     \
        double ls = k->ls, loss, b;                                                     \
        if (!k->probs) {                                                                \
            int64_t t = k->ti[r];                                                       \
            if (t == k->ignore) {                                                       \
                k->stats[2 * r + 1] = k->loss[r] = 0;                                   \
                return;                                                                 \
            }                                                                           \
            b = w ? (double)w[t] : 1;                                                   \
            loss = -b * (((double)x[t * st] - sh) - lse);                               \
            if (ls > 0) { /* smoothing: -sum_c w_c log p_c, mixed in */                 \
                double sx;                                                              \
                if (w) LANE_SUM(sx, C, (double)w[c] * ((double)x[c * st] - sh));        \
                else LANE_SUM(sx, C, (double)x[c * st] - sh);                           \
                loss = (1 - ls) * loss - ls / (double)C * (sx - k->W * lse);            \
            }                                                                           \
        } else {                                                                        \
            const T *tp = (const T *)k->tp + base;                                      \
            double tx, tw, a1 = 1 - ls, a0 = ls / (double)C;                            \
            if (w) {                                                                    \
                LANE_SUM(tx, C, (double)w[c] * ((double)tp[c * st] * a1 + a0) *        \
                                    ((double)x[c * st] - sh));                          \
                LANE_SUM(tw, C, (double)w[c] * ((double)tp[c * st] * a1 + a0));         \
            } else {                                                                    \
                LANE_SUM(tx, C, ((double)tp[c * st] * a1 + a0) * ((double)x[c * st] - sh)); \
                LANE_SUM(tw, C, (double)tp[c * st] * a1 + a0);                          \
            }                                                                           \
            b = tw;                                                                     \
            loss = -(tx - tw * lse);                                                    \
        }                                                                               \
        k->stats[2 * r + 1] = b;                                                        \
        k->loss[r] = loss;                                                              \
    }                                                                                   \
    /* softmax probability of logit x in a row with log-sum-exp lse */                  \
    static inline T P##_prob(T x, double lse) { return EXP((T)((double)x - lse)); }     \
    /* (softmax - smoothed one-hot) * scale, one pass */                                \
    static void P##_ce_bwd_row(const class_ctx *k, int64_t r)                           \
    {                                                                                   \
        int64_t C = k->C, st = k->S, base = r / st * C * st + r % st;                   \
        const T *x = (const T *)k->x + base, *w = k->w;                                 \
        T *gx = k->gx ? (T *)k->gx + base : NULL, *gt = k->gt ? (T *)k->gt + base : NULL; \
        double gr = k->g[r], ls = k->ls, lse = k->stats[2 * r];                         \
        if (!k->probs) {                                                                \
            int64_t t = k->ti[r];                                                       \
            if (t == k->ignore) {                                                       \
                for (int64_t c = 0; c < C; c++) gx[c * st] = 0;                         \
                return;                                                                 \
            }                                                                           \
            double wt = k->stats[2 * r + 1], a = gr * (1 - ls), b = gr * ls / (double)C; \
            T k1 = (T)(a * wt + b * k->W), bt = (T)b;                                   \
            if (st == 1 && w)                                                           \
                for (int64_t c = 0; c < C; c++) gx[c] = k1 * P##_prob(x[c], lse) - bt * w[c]; \
            else if (st == 1)                                                           \
                for (int64_t c = 0; c < C; c++) gx[c] = k1 * P##_prob(x[c], lse) - bt;  \
            else                                                                        \
                for (int64_t c = 0; c < C; c++)                                         \
                    gx[c * st] = k1 * P##_prob(x[c * st], lse) - bt * (w ? w[c] : 1);   \
            gx[t * st] -= (T)(a * wt);                                                  \
            return;                                                                     \
        }                                                                               \
        const T *tp = (const T *)k->tp + base;                                          \
        T g1 = (T)(gr * k->stats[2 * r + 1]), grt = (T)gr;                              \
        T a1 = (T)(1 - ls), a0 = (T)(ls / (double)C);                                   \
        if (gx)                                                                         \
            for (int64_t c = 0; c < C; c++)                                             \
                gx[c * st] = g1 * P##_prob(x[c * st], lse) -                            \
                             grt * (w ? w[c] : 1) * (tp[c * st] * a1 + a0);             \
        if (gt)                                                                         \
            for (int64_t c = 0; c < C; c++)                                             \
                gt[c * st] = -grt * a1 * (w ? w[c] : 1) * (T)((double)x[c * st] - lse); \
    }                                                                                   \
    static void P##_nll_fwd_row(const class_ctx *k, int64_t r)                          \
    {                                                                                   \
        int64_t C = k->C, st = k->S, base = r / st * C * st + r % st, t = k->ti[r];     \
        const T *x = (const T *)k->x + base, *w = k->w;                                 \
        double b = t == k->ignore ? 0 : w ? (double)w[t] : 1;                           \
        k->stats[2 * r] = 0;                                                            \
        k->stats[2 * r + 1] = b;                                                        \
        k->loss[r] = b ? -b * (double)x[t * st] : 0;                                    \
    }                                                                                   \
    static void P##_nll_bwd_row(const class_ctx *k, int64_t r)                          \
    {                                                                                   \
        int64_t C = k->C, st = k->S, base = r / st * C * st + r % st, t = k->ti[r];     \
        T *gx = (T *)k->gx + base;                                                      \
        for (int64_t c = 0; c < C; c++) gx[c * st] = 0;                                 \
        if (t != k->ignore) gx[t * st] = (T)(-k->g[r] * k->stats[2 * r + 1]);           \
    }                                                                                   \
    static void P##_class_forward(wk_loss_op op, const class_ctx *k)                    \
    {                                                                                   \
        int nt = wki_threads_for(k->R * k->C, GRAIN);                                   \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                    \
        for (int64_t r = 0; r < k->R; r++) {                                            \
            if (op == WK_LOSS_NLL) P##_nll_fwd_row(k, r);                               \
            else P##_ce_fwd_row(k, r);                                                  \
        }                                                                               \
    }                                                                                   \
    static void P##_class_backward(wk_loss_op op, const class_ctx *k)                   \
    {                                                                                   \
        int nt = wki_threads_for(k->R * k->C, GRAIN);                                   \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                    \
        for (int64_t r = 0; r < k->R; r++) {                                            \
            if (op == WK_LOSS_NLL) P##_nll_bwd_row(k, r);                               \
            else P##_ce_bwd_row(k, r);                                                  \
        }                                                                               \
    }
CLASS_KERNELS(f32, float, wki_expf)
CLASS_KERNELS(f64, double, exp)

static void cpu_class_forward(wk_loss_op op, wk_dtype dt, const class_ctx *k)
{
    if (dt == WK_DTYPE_F32) f32_class_forward(op, k);
    else f64_class_forward(op, k);
}

static void cpu_class_backward(wk_loss_op op, wk_dtype dt, const class_ctx *k)
{
    if (dt == WK_DTYPE_F32) f32_class_backward(op, k);
    else f64_class_backward(op, k);
}

/* ---- CPU kernels: point-wise losses ----
 * Each loss is an expression of x = a[i], y = b[i], p = pos_weight[i] (1 without) and
 * beta, in double; so are the derivatives by a (GA) and by b (GB). */

static inline double sgn(double d) { return (double)((d > 0) - (d < 0)); }
/* log(1 + exp(-x)) without overflow */
static inline double softplus_neg(double x) { return log1p(exp(-fabs(x))) + fmax(-x, 0); }
/* sigmoid(-x) without overflow */
static inline double sigmoid_neg(double x)
{
    double e = exp(-fabs(x));
    return x >= 0 ? e / (1 + e) : 1 / (1 + e);
}

#define MSE_L ((x - y) * (x - y))
#define MSE_GA (2 * (x - y))
#define MSE_GB (-2 * (x - y))
#define L1_L fabs(x - y)
#define L1_GA sgn(x - y)
#define L1_GB (-sgn(x - y))
#define SL1_L (fabs(x - y) < beta ? 0.5 * (x - y) * (x - y) / beta : fabs(x - y) - 0.5 * beta)
#define SL1_GA (fabs(x - y) < beta ? (x - y) / beta : sgn(x - y))
#define SL1_GB (-(SL1_GA))
#define BCE_L ((1 - y) * x + (1 + (p - 1) * y) * softplus_neg(x))
#define BCE_GA ((1 - y) - (1 + (p - 1) * y) * sigmoid_neg(x))
#define BCE_GB (-x + (p - 1) * softplus_neg(x))

#define PW_KERNELS(P, T, K, LOSS, GA, GB)                                               \
    static void P##_##K##_fwd(const pw_ctx *k)                                          \
    {                                                                                   \
        const T *a = k->a, *b = k->b, *pw = k->pw;                                      \
        T *out = k->out;                                                                \
        double beta = k->beta;                                                          \
        int64_t n = k->n, nb = (n + PW_BLOCK - 1) / PW_BLOCK;                           \
        int nt = wki_threads_for(n, GRAIN);                                             \
        (void)beta, (void)pw;                                                           \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                    \
        for (int64_t blk = 0; blk < nb; blk++) {                                        \
            int64_t i0 = blk * PW_BLOCK, i1 = n - i0 < PW_BLOCK ? n : i0 + PW_BLOCK;     \
            if (out) {                                                                  \
                for (int64_t i = i0; i < i1; i++) {                                     \
                    double x = a[i], y = b[i], p = pw ? pw[i] : 1;                      \
                    (void)p;                                                            \
                    out[i] = (T)(LOSS);                                                 \
                }                                                                       \
                continue;                                                               \
            }                                                                           \
            double s;                                                                   \
            const T *ab = a + i0, *bb = b + i0, *pb = pw ? pw + i0 : NULL;              \
            (void)pb;                                                                   \
            LANE_SUM(s, i1 - i0, ({                                                     \
                         double x = ab[c], y = bb[c], p = pb ? pb[c] : 1;               \
                         (void)p;                                                       \
                         LOSS;                                                          \
                     }));                                                               \
            k->partial[blk] = s;                                                        \
        }                                                                               \
    }                                                                                   \
    static void P##_##K##_bwd(const pw_ctx *k)                                          \
    {                                                                                   \
        const T *a = k->a, *b = k->b, *pw = k->pw, *g = k->g;                           \
        T *ga = k->ga, *gb = k->gb;                                                     \
        double beta = k->beta, gs = k->gscale;                                          \
        int64_t n = k->n, gst = k->gst;                                                 \
        int nt = wki_threads_for(n, GRAIN);                                             \
        (void)beta, (void)pw;                                                           \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                    \
        for (int64_t i = 0; i < n; i++) {                                               \
            double x = a[i], y = b[i], p = pw ? pw[i] : 1, gi = gs * (double)g[i * gst]; \
            (void)p;                                                                    \
            if (ga) ga[i] = (T)(gi * (GA));                                             \
            if (gb) gb[i] = (T)(gi * (GB));                                             \
        }                                                                               \
    }
#define PW_ALL(P, T)                                                                    \
    PW_KERNELS(P, T, mse, MSE_L, MSE_GA, MSE_GB)                                        \
    PW_KERNELS(P, T, l1, L1_L, L1_GA, L1_GB)                                            \
    PW_KERNELS(P, T, sl1, SL1_L, SL1_GA, SL1_GB)                                        \
    PW_KERNELS(P, T, bce, BCE_L, BCE_GA, BCE_GB)
PW_ALL(f32, float)
PW_ALL(f64, double)

typedef void (*pw_fn)(const pw_ctx *k);
/* [dtype f32/f64][forward/backward], indexed by op - WK_LOSS_MSE */
static const pw_fn pw_fns[4][2][2] = {
    {{f32_mse_fwd, f32_mse_bwd}, {f64_mse_fwd, f64_mse_bwd}},
    {{f32_l1_fwd, f32_l1_bwd}, {f64_l1_fwd, f64_l1_bwd}},
    {{f32_sl1_fwd, f32_sl1_bwd}, {f64_sl1_fwd, f64_sl1_bwd}},
    {{f32_bce_fwd, f32_bce_bwd}, {f64_bce_fwd, f64_bce_bwd}},
};

static void cpu_pw_forward(wk_loss_op op, wk_dtype dt, const pw_ctx *k)
{
    pw_fns[op - WK_LOSS_MSE][dt == WK_DTYPE_F64][0](k);
}

static void cpu_pw_backward(wk_loss_op op, wk_dtype dt, const pw_ctx *k)
{
    pw_fns[op - WK_LOSS_MSE][dt == WK_DTYPE_F64][1](k);
}

static const loss_kernels kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = {cpu_class_forward, cpu_class_backward, cpu_pw_forward, cpu_pw_backward},
    [WK_DEVICE_CUDA] = {NULL, NULL, NULL, NULL},
};

/* ---- the family ---- */

static int class_backward(wki_node *n, wk_tensor *g, wk_tensor **grads);
static int pw_backward(wki_node *n, wk_tensor *g, wk_tensor **grads);

static const struct loss_info {
    const char *name;
    bool classes; /* (N, C, d...) input with class targets */
    wki_backward_fn backward;
} loss_info[] = {
    [WK_LOSS_CROSS_ENTROPY] = {"cross_entropy", true, class_backward},
    [WK_LOSS_NLL] = {"nll_loss", true, class_backward},
    [WK_LOSS_MSE] = {"mse_loss", false, pw_backward},
    [WK_LOSS_L1] = {"l1_loss", false, pw_backward},
    [WK_LOSS_SMOOTH_L1] = {"smooth_l1_loss", false, pw_backward},
    [WK_LOSS_BCE_WITH_LOGITS] = {"binary_cross_entropy_with_logits", false, pw_backward},
};
_Static_assert(sizeof loss_info / sizeof loss_info[0] == WK_LOSS_COUNT,
               "loss_info needs one entry per wk_loss_op");

const char *wk_loss_name(wk_loss_op op)
{
    return (unsigned)op < WK_LOSS_COUNT ? loss_info[op].name : "?";
}

/* A float32/float64 tensor, or an error naming `what` and how to convert. */
static bool check_float(const char *op, const char *what, const wk_tensor *t)
{
    if (t->dtype == WK_DTYPE_F32 || t->dtype == WK_DTYPE_F64) return true;
    if (t->dtype == WK_DTYPE_BF16 || t->dtype == WK_DTYPE_F16)
        wk_set_error("%s: %s is %s (shape %s), a storage dtype; convert with "
                     "wk_to_dtype(t, WK_DTYPE_F32) first",
                     op, what, wk_dtype_name(t->dtype), wki_shape_s(t));
    else
        wk_set_error("%s: %s must be float32 or float64, got %s (shape %s)", op, what,
                     wk_dtype_name(t->dtype), wki_shape_s(t));
    return false;
}

static bool same_float_dtype(const char *op, const char *what, const wk_tensor *t,
                             const wk_tensor *input)
{
    if (!check_float(op, what, t)) return false;
    if (t->dtype != input->dtype) {
        wk_set_error("%s: %s is %s (shape %s) but the input is %s (shape %s); expected one "
                     "dtype",
                     op, what, wk_dtype_name(t->dtype), wki_shape_s(t),
                     wk_dtype_name(input->dtype), wki_shape_s(input));
        return false;
    }
    return wki_same_device(op, input, t);
}

/* A 0-d result from a double. */
static wk_tensor *scalar_out(double v, const wk_tensor *like)
{
    wk_tensor *out = wki_empty_on(NULL, 0, like->dtype, like->device);
    if (!out) return NULL;
    if (out->dtype == WK_DTYPE_F32) *(float *)wk_data(out) = (float)v;
    else *(double *)wk_data(out) = v;
    return out;
}

/* Keep t (may be NULL) in the node's slot k. */
static void save(wki_node *n, int k, wk_tensor *t)
{
    if (t) wki_node_save(n, k, t);
}

/* ---- class losses ---- */

/* Row geometry of a class-loss input: (C) is one row, (N, C, d...) is N * prod(d) rows. */
static void class_geom(const wk_tensor *x, int64_t *N, int64_t *C, int64_t *S)
{
    *N = x->ndim == 1 ? 1 : x->shape[0];
    *C = x->shape[x->ndim == 1 ? 0 : 1];
    *S = 1;
    for (int d = 2; d < x->ndim; d++)
        *S *= x->shape[d];
}

static wk_tensor *class_loss(wk_loss_op op, const wk_loss_args *args)
{
    const char *name = loss_info[op].name;
    wk_tensor *x = args->input, *t = args->target, *w = args->weight;
    const char *xname = op == WK_LOSS_NLL ? "log_probs" : "logits";
    if (x->ndim < 1) {
        wk_set_error("%s: expected %s of shape (C), (N, C) or (N, C, d1, ...), got a 0-d "
                     "tensor",
                     name, xname);
        return NULL;
    }
    int64_t N, C, S;
    class_geom(x, &N, &C, &S);
    int64_t R = N * S, oshape[WK_MAX_DIMS];
    int ond = 0, cdim = x->ndim == 1 ? 0 : 1;
    for (int d = 0; d < x->ndim; d++)
        if (d != cdim) oshape[ond++] = x->shape[d];

    bool probs = wk_dtype_is_float(t->dtype);
    if (probs && op == WK_LOSS_NLL) {
        wk_set_error("nll_loss: target must hold int64 or int32 class indices of shape %s, "
                     "got %s of shape %s",
                     wki_dims_s(oshape, ond), wk_dtype_name(t->dtype), wki_shape_s(t));
        return NULL;
    }
    if (probs) {
        if (!same_float_dtype(name, "target (probabilities)", t, x)) return NULL;
        if (!wk_same_shape(t, x)) {
            wk_set_error("%s: target probabilities of shape %s do not match %s of shape %s; "
                         "expected the same shape (or class indices of shape %s)",
                         name, wki_shape_s(t), xname, wki_shape_s(x), wki_dims_s(oshape, ond));
            return NULL;
        }
    } else {
        if (t->dtype != WK_DTYPE_I64 && t->dtype != WK_DTYPE_I32) {
            wk_set_error("%s: target must be int64 or int32 class indices%s, got %s (shape "
                         "%s)",
                         name, op == WK_LOSS_NLL ? "" : " or float probabilities",
                         wk_dtype_name(t->dtype), wki_shape_s(t));
            return NULL;
        }
        if (!wki_same_device(name, x, t)) return NULL;
        bool match = t->ndim == ond;
        for (int d = 0; d < ond && match; d++)
            match = t->shape[d] == oshape[d];
        if (!match) {
            wk_set_error("%s: target of shape %s does not match %s of shape %s; expected "
                         "class indices of shape %s",
                         name, wki_shape_s(t), xname, wki_shape_s(x), wki_dims_s(oshape, ond));
            return NULL;
        }
    }
    double ls = op == WK_LOSS_CROSS_ENTROPY ? args->label_smoothing : 0;
    if (!(ls >= 0 && ls <= 1)) {
        wk_set_error("%s: label_smoothing must be in [0, 1], got %g", name, ls);
        return NULL;
    }
    if (C == 0 && R > 0) {
        wk_set_error("%s: %s of shape %s has no classes (dim %d is 0)", name, xname,
                     wki_shape_s(x), cdim);
        return NULL;
    }
    if (w) {
        if (!same_float_dtype(name, "weight", w, x)) return NULL;
        if (w->ndim != 1 || w->shape[0] != C) {
            wk_set_error("%s: weight of shape %s does not match %lld classes of %s of shape "
                         "%s; expected shape [%lld]",
                         name, wki_shape_s(w), (long long)C, xname, wki_shape_s(x),
                         (long long)C);
            return NULL;
        }
    }

    /* Contiguous inputs (no copy when they already are); never recorded. */
    wk_no_grad_begin();
    wk_tensor *xc = wk_contiguous(x);
    wk_tensor *tc = probs ? wk_contiguous(t) : wk_to_dtype(t, WK_DTYPE_I64);
    wk_tensor *wc = w ? wk_contiguous(w) : NULL;
    wk_no_grad_end();
    if (!xc || !tc || (w && !wc)) return NULL;
    if (!probs) { /* every index is checked before anything is computed */
        const int64_t *ti = wk_data(tc);
        for (int64_t r = 0; r < R; r++) {
            if (ti[r] != args->ignore_index && (ti[r] < 0 || ti[r] >= C)) {
                wk_set_error("%s: target %lld (at flat position %lld) is out of range for %lld "
                             "classes; expected 0..%lld or ignore_index %lld",
                             name, (long long)ti[r], (long long)r, (long long)C,
                             (long long)C - 1, (long long)args->ignore_index);
                return NULL;
            }
        }
    }
    double W = (double)C;
    if (wc) {
        W = 0;
        for (int64_t c = 0; c < C; c++)
            W += wk_get(wc, (int64_t[]){c});
    }
    wk_tensor *stats = wki_empty_on(WK_SHAPE(R, 2), WK_DTYPE_F64, x->device);
    wk_tensor *rows = wki_empty_on(WK_SHAPE(R), WK_DTYPE_F64, x->device);
    if (!stats || !rows) return NULL;
    class_ctx k = {.C = C, .S = S, .R = R, .probs = probs, .ls = ls, .W = W,
                   .ignore = args->ignore_index, .x = wk_data(xc), .w = wc ? wk_data(wc) : NULL,
                   .tp = probs ? wk_data(tc) : NULL, .ti = probs ? NULL : wk_data(tc),
                   .stats = wk_data(stats), .loss = wk_data(rows)};
    kernels[x->device.type].class_forward(op, x->dtype, &k);

    /* The reduction: serial sums in double, in row order. */
    double total = 0, denom = probs ? (double)R : 0;
    for (int64_t r = 0; r < R; r++) {
        total += k.loss[r];
        if (!probs) denom += k.stats[2 * r + 1];
    }
    wk_tensor *out;
    if (args->reduction == WK_REDUCTION_NONE) {
        out = wki_empty_on(oshape, ond, x->dtype, x->device);
        wk_no_grad_begin();
        if (out && !wk_copy_(out, wk_view(rows, oshape, ond))) out = NULL;
        wk_no_grad_end();
    } else {
        out = scalar_out(args->reduction == WK_REDUCTION_SUM ? total : total / denom, x);
    }
    wk_tensor_free(rows);
    if (!out) return NULL;

    wk_tensor *in[2] = {x, probs ? t : NULL};
    if (wki_grad_needed(2, (const wk_tensor *const *)in)) {
        wki_node *n = wki_node_new(out, name, loss_info[op].backward, probs ? 2 : 1, in);
        if (!n) {
            wk_tensor_free(out);
            return NULL;
        }
        save(n, 0, op == WK_LOSS_CROSS_ENTROPY ? xc : NULL);
        save(n, 1, tc);
        save(n, 2, wc);
        save(n, 3, stats);
        n->f[0] = ls;
        n->f[1] = W;
        n->f[2] = denom;
        n->i[0] = op;
        n->i[1] = args->reduction;
        n->i[2] = args->ignore_index;
        n->i[3] = probs;
    }
    /* this function's handles; the node holds its own references */
    wk_tensor_free(xc);
    wk_tensor_free(tc);
    wk_tensor_free(wc);
    wk_tensor_free(stats);
    return out;
}

/* The per-row output gradients: g itself (NONE), or the scalar g scaled by the
 * reduction, in a double array of R. */
static wk_tensor *row_grads(wk_tensor *g, int64_t R, wk_reduction red, double denom)
{
    wk_tensor *gr = wki_empty_on(WK_SHAPE(R), WK_DTYPE_F64, g->device);
    if (!gr) return NULL;
    if (red == WK_REDUCTION_NONE) return wk_copy_(gr, wk_reshape(g, WK_SHAPE(R)));
    double v = wk_item(g) / (red == WK_REDUCTION_MEAN ? denom : 1);
    return wk_fill_(gr, v);
}

static int class_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_loss_op op = (wk_loss_op)n->i[0];
    wk_tensor *x = n->inputs[0];
    int64_t N, C, S;
    class_geom(x, &N, &C, &S);
    bool probs = n->i[3];
    wk_tensor *tc = n->saved[1], *wc = n->saved[2], *stats = n->saved[3];
    wk_tensor *gr = row_grads(g, N * S, (wk_reduction)n->i[1], n->f[2]);
    wk_tensor *gx = wki_node_input_needs_grad(n, 0) ? wk_empty_like(x) : NULL;
    wk_tensor *gt = probs && wki_node_input_needs_grad(n, 1) ? wk_empty_like(x) : NULL;
    if (!gr || (wki_node_input_needs_grad(n, 0) && !gx) ||
        (probs && wki_node_input_needs_grad(n, 1) && !gt))
        return -1;
    class_ctx k = {.C = C, .S = S, .R = N * S, .probs = probs, .ls = n->f[0], .W = n->f[1],
                   .ignore = n->i[2], .x = n->saved[0] ? wk_data(n->saved[0]) : NULL,
                   .w = wc ? wk_data(wc) : NULL, .tp = probs ? wk_data(tc) : NULL,
                   .ti = probs ? NULL : wk_data(tc), .stats = wk_data(stats),
                   .g = wk_data(gr), .gx = gx ? wk_data(gx) : NULL,
                   .gt = gt ? wk_data(gt) : NULL};
    kernels[x->device.type].class_backward(op, x->dtype, &k);
    grads[0] = gx;
    grads[1] = gt;
    return 0;
}

/* ---- point-wise losses ---- */

static wk_tensor *pw_loss(wk_loss_op op, const wk_loss_args *args)
{
    const char *name = loss_info[op].name;
    wk_tensor *a = args->input, *b = args->target, *pw = args->pos_weight;
    if (!same_float_dtype(name, "target", b, a)) return NULL;
    if (!wk_same_shape(a, b)) {
        wk_set_error("%s: input of shape %s and target of shape %s differ; expected the same "
                     "shape",
                     name, wki_shape_s(a), wki_shape_s(b));
        return NULL;
    }
    if (op == WK_LOSS_SMOOTH_L1 && !(args->beta >= 0)) {
        wk_set_error("smooth_l1_loss: beta must be >= 0, got %g", args->beta);
        return NULL;
    }
    if (pw && op != WK_LOSS_BCE_WITH_LOGITS) pw = NULL;
    if (pw) {
        if (!same_float_dtype(name, "pos_weight", pw, a)) return NULL;
        bool ok = pw->ndim <= a->ndim;
        for (int d = 0; d < pw->ndim && ok; d++) {
            int64_t s = pw->shape[pw->ndim - 1 - d];
            ok = s == 1 || s == a->shape[a->ndim - 1 - d];
        }
        if (!ok) {
            wk_set_error("%s: pos_weight of shape %s does not broadcast to the input's shape "
                         "%s",
                         name, wki_shape_s(pw), wki_shape_s(a));
            return NULL;
        }
    }
    wk_no_grad_begin();
    wk_tensor *ac = wk_contiguous(a), *bc = wk_contiguous(b);
    wk_tensor *pwc = pw ? wk_contiguous(wk_expand(pw, a->shape, a->ndim)) : NULL;
    wk_no_grad_end();
    if (!ac || !bc || (pw && !pwc)) return NULL;
    int64_t n = wk_numel(a), nb = (n + PW_BLOCK - 1) / PW_BLOCK;
    pw_ctx k = {.n = n, .beta = args->beta, .a = wk_data(ac), .b = wk_data(bc),
                .pw = pwc ? wk_data(pwc) : NULL};
    wk_tensor *out, *partial = NULL;
    if (args->reduction == WK_REDUCTION_NONE) {
        out = wki_empty_on(a->shape, a->ndim, a->dtype, a->device);
        if (!out) return NULL;
        k.out = wk_data(out);
        kernels[a->device.type].pw_forward(op, a->dtype, &k);
    } else {
        partial = wki_empty_on(WK_SHAPE(nb), WK_DTYPE_F64, a->device);
        if (!partial) return NULL;
        k.partial = wk_data(partial);
        kernels[a->device.type].pw_forward(op, a->dtype, &k);
        double s = 0;
        for (int64_t i = 0; i < nb; i++)
            s += k.partial[i];
        out = scalar_out(args->reduction == WK_REDUCTION_SUM ? s : s / (double)n, a);
        wk_tensor_free(partial);
        if (!out) return NULL;
    }
    if (wki_grad_needed(2, (const wk_tensor *const[]){a, b})) {
        wki_node *nd = wki_node_new(out, name, pw_backward, 2, (wk_tensor *[]){a, b});
        if (!nd) {
            wk_tensor_free(out);
            return NULL;
        }
        save(nd, 0, ac);
        save(nd, 1, bc);
        save(nd, 2, pwc);
        nd->f[0] = args->beta;
        nd->i[0] = op;
        nd->i[1] = args->reduction;
    }
    wk_tensor_free(ac);
    wk_tensor_free(bc);
    wk_tensor_free(pwc);
    return out;
}

static int pw_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_loss_op op = (wk_loss_op)n->i[0];
    wk_reduction red = (wk_reduction)n->i[1];
    wk_tensor *ac = n->saved[0], *bc = n->saved[1], *pwc = n->saved[2];
    int64_t numel = wk_numel(ac);
    wk_tensor *gc = red == WK_REDUCTION_NONE ? wk_contiguous(g) : g;
    bool need_a = wki_node_input_needs_grad(n, 0), need_b = wki_node_input_needs_grad(n, 1);
    wk_tensor *ga = need_a ? wk_empty_like(ac) : NULL, *gb = need_b ? wk_empty_like(ac) : NULL;
    if (!gc || (need_a && !ga) || (need_b && !gb)) return -1;
    pw_ctx k = {.n = numel, .beta = n->f[0], .a = wk_data(ac), .b = wk_data(bc),
                .pw = pwc ? wk_data(pwc) : NULL, .g = wk_data(gc),
                .gst = red == WK_REDUCTION_NONE,
                .gscale = red == WK_REDUCTION_MEAN ? 1 / (double)numel : 1,
                .ga = ga ? wk_data(ga) : NULL, .gb = gb ? wk_data(gb) : NULL};
    kernels[ac->device.type].pw_backward(op, ac->dtype, &k);
    grads[0] = ga;
    grads[1] = gb;
    return 0;
}

/* ---- front-end and entry points ---- */

wk_tensor *wk_loss(wk_loss_op op, const wk_loss_args *args)
{
    if ((unsigned)op >= WK_LOSS_COUNT) {
        wk_set_error("loss: invalid op %d", (int)op);
        return NULL;
    }
    const char *name = loss_info[op].name;
    WKI_PROF_OP(name, args ? args->input : NULL, args ? args->target : NULL);
    if (!args) {
        wk_set_error("%s: args is NULL", name);
        return NULL;
    }
    if (!WKI_CHECK(name, args->input, args->target)) return NULL;
    wk_tensor *x = args->input;
    if (!kernels[x->device.type].class_forward) {
        char d[32];
        wk_set_error("%s: no kernel for device %s", name, wk_device_str(x->device, d, sizeof d));
        return NULL;
    }
    if ((unsigned)args->reduction > WK_REDUCTION_NONE) {
        wk_set_error("%s: invalid reduction %d; expected WK_REDUCTION_MEAN, _SUM or _NONE", name,
                     (int)args->reduction);
        return NULL;
    }
    if (!check_float(name, "input", x)) return NULL;
    return loss_info[op].classes ? class_loss(op, args) : pw_loss(op, args);
}

wk_tensor *wk_cross_entropy(wk_tensor *logits, wk_tensor *target,
                            const wk_cross_entropy_opts *opts)
{
    static const wk_cross_entropy_opts defaults = WK_CROSS_ENTROPY_DEFAULTS;
    if (!opts) opts = &defaults;
    return wk_loss(WK_LOSS_CROSS_ENTROPY,
                   &(wk_loss_args){.input = logits, .target = target, .weight = opts->weight,
                                   .reduction = opts->reduction,
                                   .ignore_index = opts->ignore_index,
                                   .label_smoothing = opts->label_smoothing});
}

wk_tensor *wk_nll_loss(wk_tensor *log_probs, wk_tensor *target, const wk_nll_loss_opts *opts)
{
    static const wk_nll_loss_opts defaults = WK_NLL_LOSS_DEFAULTS;
    if (!opts) opts = &defaults;
    return wk_loss(WK_LOSS_NLL, &(wk_loss_args){.input = log_probs, .target = target,
                                                .weight = opts->weight,
                                                .reduction = opts->reduction,
                                                .ignore_index = opts->ignore_index});
}

wk_tensor *wk_mse_loss(wk_tensor *a, wk_tensor *b, wk_reduction reduction)
{
    return wk_loss(WK_LOSS_MSE, &(wk_loss_args){.input = a, .target = b, .reduction = reduction});
}

wk_tensor *wk_l1_loss(wk_tensor *a, wk_tensor *b, wk_reduction reduction)
{
    return wk_loss(WK_LOSS_L1, &(wk_loss_args){.input = a, .target = b, .reduction = reduction});
}

wk_tensor *wk_smooth_l1_loss(wk_tensor *a, wk_tensor *b, wk_reduction reduction, double beta)
{
    return wk_loss(WK_LOSS_SMOOTH_L1, &(wk_loss_args){.input = a, .target = b,
                                                      .reduction = reduction, .beta = beta});
}

wk_tensor *wk_binary_cross_entropy_with_logits(wk_tensor *logits, wk_tensor *target,
                                               wk_reduction reduction, wk_tensor *pos_weight)
{
    return wk_loss(WK_LOSS_BCE_WITH_LOGITS,
                   &(wk_loss_args){.input = logits, .target = target, .pos_weight = pos_weight,
                                   .reduction = reduction});
}
