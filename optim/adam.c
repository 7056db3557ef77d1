/* Adam and AdamW: torch.optim.Adam / AdamW (torch 1.13, single-tensor path).
 *
 *   g = maximize ? -grad : grad
 *   AdamW: p *= 1 - lr*weight_decay            Adam: g += weight_decay*p (when != 0)
 *   m = beta1*m + (1-beta1)*g                  v = beta2*v + (1-beta2)*g*g
 *   amsgrad: vmax = max(vmax, v), used for v below
 *   p += -lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
 *
 * Each line is evaluated in the parameter's dtype in torch's order of operations, with
 * the scalars rounded to that dtype as ATen's CPU kernels do, in a single pass over p,
 * g, m, v (and vmax). */
#include <math.h>

#include "../tensor/tensor-impl.h"
#include "optimizer-impl.h"

enum { BETA1, BETA2, EPS, WEIGHT_DECAY, AMSGRAD, MAXIMIZE, NHP };
enum { EXP_AVG, EXP_AVG_SQ, MAX_EXP_AVG_SQ, NSLOTS };

static const wki_hparam_info adam_hparams[] = {
    [BETA1] = {"beta1", 0.9, 0, 1, true, false},
    [BETA2] = {"beta2", 0.999, 0, 1, true, false},
    [EPS] = {"eps", 1e-8, 0, INFINITY, false, false},
    [WEIGHT_DECAY] = {"weight_decay", 0, 0, INFINITY, false, false},
    [AMSGRAD] = {"amsgrad", 0, 0, 1, false, true},
    [MAXIMIZE] = {"maximize", 0, 0, 1, false, true},
};
_Static_assert(sizeof adam_hparams / sizeof adam_hparams[0] == NHP, "adam hparams table");
_Static_assert(NHP <= WKI_OPTIM_MAX_HPARAMS, "too many adam hparams");

/* AdamW differs only in its default weight decay. */
static const wki_hparam_info adamw_hparams[] = {
    [BETA1] = {"beta1", 0.9, 0, 1, true, false},
    [BETA2] = {"beta2", 0.999, 0, 1, true, false},
    [EPS] = {"eps", 1e-8, 0, INFINITY, false, false},
    [WEIGHT_DECAY] = {"weight_decay", 1e-2, 0, INFINITY, false, false},
    [AMSGRAD] = {"amsgrad", 0, 0, 1, false, true},
    [MAXIMIZE] = {"maximize", 0, 0, 1, false, true},
};
_Static_assert(sizeof adamw_hparams / sizeof adamw_hparams[0] == NHP, "adamw hparams table");

static const char *const adam_slots[] = {
    [EXP_AVG] = "exp_avg", [EXP_AVG_SQ] = "exp_avg_sq", [MAX_EXP_AVG_SQ] = "max_exp_avg_sq"};
_Static_assert(sizeof adam_slots / sizeof adam_slots[0] == NSLOTS, "adam slots table");

static bool adam_slot_used(const double *hp, int s)
{
    return s != MAX_EXP_AVG_SQ || hp[AMSGRAD] != 0;
}
static double adam_slot_init(const double *hp, int s) { (void)hp, (void)s; return 0; }

/* How weight decay enters: not at all, added to the grad (Adam), or decoupled (AdamW). */
enum { DECAY_NONE, DECAY_GRAD, DECAY_DECOUPLED };

/* The update of elements [lo, hi) in type T; `amsgrad` and `decay` are constants at
 * every call site, so each combination compiles to its own branch-free loop. */
#define DEFINE_ADAM_RANGE(T, SQRT)                                                        \
    static inline __attribute__((always_inline)) void adam_range_##T(                     \
        const wki_optim_job *j, int64_t lo, int64_t hi, bool amsgrad, int decay)          \
    {                                                                                     \
        const double *hp = j->hp;                                                         \
        double t = (double)j->step;                                                       \
        double bc1 = 1 - pow(hp[BETA1], t), bc2 = 1 - pow(hp[BETA2], t);                  \
        const T b1 = (T)hp[BETA1], omb1 = (T)(1 - hp[BETA1]);                             \
        const T b2 = (T)hp[BETA2], omb2 = (T)(1 - hp[BETA2]);                             \
        const T eps = (T)hp[EPS], wd = (T)hp[WEIGHT_DECAY];                               \
        const T shrink = (T)(1 - j->lr * hp[WEIGHT_DECAY]);                               \
        const T bc2_sqrt = (T)sqrt(bc2), neg_step = (T)(-(j->lr / bc1));                  \
        const T sign = hp[MAXIMIZE] != 0 ? (T)-1 : (T)1;                                  \
        T *restrict p = j->p;                                                             \
        const T *restrict g = j->g;                                                       \
        T *restrict m = j->slot[EXP_AVG];                                                 \
        T *restrict v = j->slot[EXP_AVG_SQ];                                              \
        T *restrict vmax = j->slot[MAX_EXP_AVG_SQ];                                       \
        for (int64_t i = lo; i < hi; i++) {                                               \
            T gi = sign * g[i], pi = p[i];                                                \
            if (decay == DECAY_DECOUPLED) pi = pi * shrink;                               \
            if (decay == DECAY_GRAD) gi = gi + wd * pi;                                   \
            T mi = m[i] * b1 + omb1 * gi;                                                 \
            T vi = v[i] * b2 + omb2 * gi * gi;                                            \
            m[i] = mi;                                                                    \
            v[i] = vi;                                                                    \
            if (amsgrad) { /* torch.maximum: NaN wins */                                  \
                T mx = vmax[i];                                                           \
                mx = (vi > mx || vi != vi) ? vi : mx;                                     \
                vmax[i] = mx;                                                             \
                vi = mx;                                                                  \
            }                                                                             \
            T denom = SQRT(vi) / bc2_sqrt + eps;                                          \
            p[i] = pi + neg_step * mi / denom;                                            \
        }                                                                                 \
    }
DEFINE_ADAM_RANGE(float, sqrtf)
DEFINE_ADAM_RANGE(double, sqrt)

#define ADAM_DISPATCH(T)                                                                  \
    do {                                                                                  \
        if (ams) {                                                                        \
            if (decay == DECAY_NONE) adam_range_##T(j, lo, hi, true, DECAY_NONE);         \
            else if (decay == DECAY_GRAD) adam_range_##T(j, lo, hi, true, DECAY_GRAD);    \
            else adam_range_##T(j, lo, hi, true, DECAY_DECOUPLED);                        \
        } else {                                                                          \
            if (decay == DECAY_NONE) adam_range_##T(j, lo, hi, false, DECAY_NONE);        \
            else if (decay == DECAY_GRAD) adam_range_##T(j, lo, hi, false, DECAY_GRAD);   \
            else adam_range_##T(j, lo, hi, false, DECAY_DECOUPLED);                       \
        }                                                                                 \
    } while (0)

static void adam_update(const wki_optim_job *j, int64_t lo, int64_t hi, bool decoupled)
{
    bool ams = j->hp[AMSGRAD] != 0;
    int decay = decoupled ? DECAY_DECOUPLED : j->hp[WEIGHT_DECAY] != 0 ? DECAY_GRAD : DECAY_NONE;
    if (j->dtype == WK_DTYPE_F32) ADAM_DISPATCH(float);
    else ADAM_DISPATCH(double);
}

static void adam_cpu(const wki_optim_job *j, int64_t lo, int64_t hi)
{
    adam_update(j, lo, hi, false);
}

static void adamw_cpu(const wki_optim_job *j, int64_t lo, int64_t hi)
{
    adam_update(j, lo, hi, true);
}

const wki_optim_algo wki_adam_algo = {
    .name = "Adam",
    .op = "adam",
    .default_lr = 1e-3,
    .nhparams = NHP,
    .hparams = adam_hparams,
    .nslots = NSLOTS,
    .slots = adam_slots,
    .check = NULL,
    .slot_used = adam_slot_used,
    .slot_init = adam_slot_init,
    .kernel = {[WK_DEVICE_CPU] = adam_cpu},
};

const wki_optim_algo wki_adamw_algo = {
    .name = "AdamW",
    .op = "adamw",
    .default_lr = 1e-3,
    .nhparams = NHP,
    .hparams = adamw_hparams,
    .nslots = NSLOTS,
    .slots = adam_slots,
    .check = NULL,
    .slot_used = adam_slot_used,
    .slot_init = adam_slot_init,
    .kernel = {[WK_DEVICE_CPU] = adamw_cpu},
};
