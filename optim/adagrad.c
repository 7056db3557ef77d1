/* Adagrad: torch.optim.Adagrad (torch 1.13, single-tensor path, dense grads).
 *
 *   g = maximize ? -grad : grad;   g += weight_decay*p (when != 0)
 *   clr = lr / (1 + (t-1)*lr_decay)          (t: the parameter's step count)
 *   sum += g*g                               (sum starts at initial_accumulator_value)
 *   p += -clr*g / (sqrt(sum) + eps)
 *
 * Evaluated in the parameter's dtype in torch's order, scalars rounded to that dtype. */
#include <math.h>

#include "../tensor/tensor-impl.h"
#include "optimizer-impl.h"

enum { LR_DECAY, WEIGHT_DECAY, INITIAL_ACCUMULATOR_VALUE, EPS, MAXIMIZE, NHP };
enum { SUM, NSLOTS };

static const wki_hparam_info adagrad_hparams[] = {
    [LR_DECAY] = {"lr_decay", 0, 0, INFINITY, false, false},
    [WEIGHT_DECAY] = {"weight_decay", 0, 0, INFINITY, false, false},
    [INITIAL_ACCUMULATOR_VALUE] = {"initial_accumulator_value", 0, 0, INFINITY, false, false},
    [EPS] = {"eps", 1e-10, 0, INFINITY, false, false},
    [MAXIMIZE] = {"maximize", 0, 0, 1, false, true},
};
_Static_assert(sizeof adagrad_hparams / sizeof adagrad_hparams[0] == NHP, "adagrad hparams");
_Static_assert(NHP <= WKI_OPTIM_MAX_HPARAMS, "too many adagrad hparams");

static const char *const adagrad_slots[] = {[SUM] = "sum"};
_Static_assert(sizeof adagrad_slots / sizeof adagrad_slots[0] == NSLOTS, "adagrad slots");

static bool adagrad_slot_used(const double *hp, int s) { (void)hp, (void)s; return true; }
static double adagrad_slot_init(const double *hp, int s)
{
    (void)s;
    return hp[INITIAL_ACCUMULATOR_VALUE];
}

#define DEFINE_ADAGRAD_RANGE(T, SQRT)                                                     \
    static inline __attribute__((always_inline)) void adagrad_range_##T(                  \
        const wki_optim_job *j, int64_t lo, int64_t hi, bool decay)                       \
    {                                                                                     \
        const double *hp = j->hp;                                                         \
        double clr = j->lr / (1 + (double)(j->step - 1) * hp[LR_DECAY]);                  \
        const T neg_clr = (T)(-clr), eps = (T)hp[EPS], wd = (T)hp[WEIGHT_DECAY];          \
        const T sign = hp[MAXIMIZE] != 0 ? (T)-1 : (T)1;                                  \
        T *restrict p = j->p;                                                             \
        const T *restrict g = j->g;                                                       \
        T *restrict sum = j->slot[SUM];                                                   \
        for (int64_t i = lo; i < hi; i++) {                                               \
            T gi = sign * g[i];                                                           \
            if (decay) gi = gi + wd * p[i];                                               \
            T s = sum[i] + gi * gi;                                                       \
            sum[i] = s;                                                                   \
            p[i] = p[i] + neg_clr * gi / (SQRT(s) + eps);                                 \
        }                                                                                 \
    }
DEFINE_ADAGRAD_RANGE(float, sqrtf)
DEFINE_ADAGRAD_RANGE(double, sqrt)

static void adagrad_cpu(const wki_optim_job *j, int64_t lo, int64_t hi)
{
    bool decay = j->hp[WEIGHT_DECAY] != 0;
    if (j->dtype == WK_DTYPE_F32) {
        if (decay) adagrad_range_float(j, lo, hi, true);
        else adagrad_range_float(j, lo, hi, false);
    } else {
        if (decay) adagrad_range_double(j, lo, hi, true);
        else adagrad_range_double(j, lo, hi, false);
    }
}

const wki_optim_algo wki_adagrad_algo = {
    .name = "Adagrad",
    .op = "adagrad",
    .default_lr = 1e-2,
    .nhparams = NHP,
    .hparams = adagrad_hparams,
    .nslots = NSLOTS,
    .slots = adagrad_slots,
    .check = NULL,
    .slot_used = adagrad_slot_used,
    .slot_init = adagrad_slot_init,
    .kernel = {[WK_DEVICE_CPU] = adagrad_cpu},
};
