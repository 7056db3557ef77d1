/* SGD: torch.optim.SGD (torch 1.13, single-tensor path).
 *
 *   d = maximize ? -grad : grad;   d += weight_decay*p (when != 0)
 *   momentum != 0: buf = first step ? d : momentum*buf + (1-dampening)*d
 *                  d = nesterov ? d + momentum*buf : buf
 *   p += -lr*d
 *
 * Evaluated in the parameter's dtype in torch's order, scalars rounded to that dtype. */
#include <math.h>

#include "../tensor/tensor-impl.h"
#include "optimizer-impl.h"

enum { MOMENTUM, DAMPENING, WEIGHT_DECAY, NESTEROV, MAXIMIZE, NHP };
enum { MOMENTUM_BUFFER, NSLOTS };

static const wki_hparam_info sgd_hparams[] = {
    [MOMENTUM] = {"momentum", 0, 0, INFINITY, false, false},
    [DAMPENING] = {"dampening", 0, 0, 1, false, false},
    [WEIGHT_DECAY] = {"weight_decay", 0, 0, INFINITY, false, false},
    [NESTEROV] = {"nesterov", 0, 0, 1, false, true},
    [MAXIMIZE] = {"maximize", 0, 0, 1, false, true},
};
_Static_assert(sizeof sgd_hparams / sizeof sgd_hparams[0] == NHP, "sgd hparams table");
_Static_assert(NHP <= WKI_OPTIM_MAX_HPARAMS, "too many sgd hparams");

static const char *const sgd_slots[] = {[MOMENTUM_BUFFER] = "momentum_buffer"};
_Static_assert(sizeof sgd_slots / sizeof sgd_slots[0] == NSLOTS, "sgd slots table");

static const char *sgd_check(const double *hp)
{
    if (hp[NESTEROV] != 0 && (hp[MOMENTUM] <= 0 || hp[DAMPENING] != 0))
        return "nesterov momentum needs momentum > 0 and dampening 0";
    return NULL;
}

static bool sgd_slot_used(const double *hp, int s) { (void)s; return hp[MOMENTUM] != 0; }
/* The buffer starts as a copy of the first update direction (written by the kernel). */
static double sgd_slot_init(const double *hp, int s) { (void)hp, (void)s; return NAN; }

enum { MOM_NONE, MOM_FIRST, MOM_UPDATE };

#define DEFINE_SGD_RANGE(T)                                                               \
    static inline __attribute__((always_inline)) void sgd_range_##T(                      \
        const wki_optim_job *j, int64_t lo, int64_t hi, bool decay, int mom, bool nesterov) \
    {                                                                                     \
        const double *hp = j->hp;                                                         \
        const T wd = (T)hp[WEIGHT_DECAY], mu = (T)hp[MOMENTUM];                           \
        const T keep = (T)(1 - hp[DAMPENING]), neg_lr = (T)(-j->lr);                      \
        const T sign = hp[MAXIMIZE] != 0 ? (T)-1 : (T)1;                                  \
        T *restrict p = j->p;                                                             \
        const T *restrict g = j->g;                                                       \
        T *restrict buf = j->slot[MOMENTUM_BUFFER];                                       \
        for (int64_t i = lo; i < hi; i++) {                                               \
            T d = sign * g[i];                                                            \
            if (decay) d = d + wd * p[i];                                                 \
            if (mom != MOM_NONE) {                                                        \
                T b = mom == MOM_FIRST ? d : buf[i] * mu + keep * d;                      \
                buf[i] = b;                                                               \
                d = nesterov ? d + mu * b : b;                                            \
            }                                                                             \
            p[i] = p[i] + neg_lr * d;                                                     \
        }                                                                                 \
    }
DEFINE_SGD_RANGE(float)
DEFINE_SGD_RANGE(double)

#define SGD_DISPATCH_NESTEROV(T, decay, mom)                                              \
    do {                                                                                  \
        if (nesterov) sgd_range_##T(j, lo, hi, decay, mom, true);                         \
        else sgd_range_##T(j, lo, hi, decay, mom, false);                                 \
    } while (0)
#define SGD_DISPATCH_MOM(T, decay)                                                        \
    do {                                                                                  \
        if (mom == MOM_NONE) sgd_range_##T(j, lo, hi, decay, MOM_NONE, false);            \
        else if (mom == MOM_FIRST) SGD_DISPATCH_NESTEROV(T, decay, MOM_FIRST);            \
        else SGD_DISPATCH_NESTEROV(T, decay, MOM_UPDATE);                                 \
    } while (0)
#define SGD_DISPATCH(T)                                                                   \
    do {                                                                                  \
        if (decay) SGD_DISPATCH_MOM(T, true);                                             \
        else SGD_DISPATCH_MOM(T, false);                                                  \
    } while (0)

static void sgd_cpu(const wki_optim_job *j, int64_t lo, int64_t hi)
{
    bool decay = j->hp[WEIGHT_DECAY] != 0, nesterov = j->hp[NESTEROV] != 0;
    int mom = j->hp[MOMENTUM] == 0 ? MOM_NONE : j->fresh[MOMENTUM_BUFFER] ? MOM_FIRST : MOM_UPDATE;
    if (j->dtype == WK_DTYPE_F32) SGD_DISPATCH(float);
    else SGD_DISPATCH(double);
}

const wki_optim_algo wki_sgd_algo = {
    .name = "SGD",
    .op = "sgd",
    .default_lr = NAN,
    .nhparams = NHP,
    .hparams = sgd_hparams,
    .nslots = NSLOTS,
    .slots = sgd_slots,
    .check = sgd_check,
    .slot_used = sgd_slot_used,
    .slot_init = sgd_slot_init,
    .kernel = {[WK_DEVICE_CPU] = sgd_cpu},
};
