/* RMSprop: torch.optim.RMSprop (torch 1.13, single-tensor path).
 *
 *   g = maximize ? -grad : grad;   g += weight_decay*p (when != 0)
 *   sq = alpha*sq + (1-alpha)*g*g
 *   centered: ga = alpha*ga + (1-alpha)*g;  avg = sqrt(sq - ga*ga) + eps
 *   else:     avg = sqrt(sq) + eps
 *   momentum > 0: buf = momentum*buf + g/avg;  p += -lr*buf
 *   else:         p += -lr*g/avg
 *
 * Evaluated in the parameter's dtype in torch's order, scalars rounded to that dtype. */
#include <math.h>

#include "../tensor/tensor-impl.h"
#include "optimizer-impl.h"

enum { ALPHA, EPS, WEIGHT_DECAY, MOMENTUM, CENTERED, MAXIMIZE, NHP };
enum { SQUARE_AVG, MOMENTUM_BUFFER, GRAD_AVG, NSLOTS };

static const wki_hparam_info rmsprop_hparams[] = {
    [ALPHA] = {"alpha", 0.99, 0, INFINITY, false, false},
    [EPS] = {"eps", 1e-8, 0, INFINITY, false, false},
    [WEIGHT_DECAY] = {"weight_decay", 0, 0, INFINITY, false, false},
    [MOMENTUM] = {"momentum", 0, 0, INFINITY, false, false},
    [CENTERED] = {"centered", 0, 0, 1, false, true},
    [MAXIMIZE] = {"maximize", 0, 0, 1, false, true},
};
_Static_assert(sizeof rmsprop_hparams / sizeof rmsprop_hparams[0] == NHP, "rmsprop hparams");
_Static_assert(NHP <= WKI_OPTIM_MAX_HPARAMS, "too many rmsprop hparams");

static const char *const rmsprop_slots[] = {[SQUARE_AVG] = "square_avg",
                                            [MOMENTUM_BUFFER] = "momentum_buffer",
                                            [GRAD_AVG] = "grad_avg"};
_Static_assert(sizeof rmsprop_slots / sizeof rmsprop_slots[0] == NSLOTS, "rmsprop slots");

static bool rmsprop_slot_used(const double *hp, int s)
{
    return s == SQUARE_AVG || (s == MOMENTUM_BUFFER && hp[MOMENTUM] > 0) ||
           (s == GRAD_AVG && hp[CENTERED] != 0);
}
static double rmsprop_slot_init(const double *hp, int s) { (void)hp, (void)s; return 0; }

#define DEFINE_RMSPROP_RANGE(T, SQRT)                                                     \
    static inline __attribute__((always_inline)) void rmsprop_range_##T(                  \
        const wki_optim_job *j, int64_t lo, int64_t hi, bool decay, bool centered,        \
        bool momentum)                                                                    \
    {                                                                                     \
        const double *hp = j->hp;                                                         \
        const T alpha = (T)hp[ALPHA], oma = (T)(1 - hp[ALPHA]), eps = (T)hp[EPS];         \
        const T wd = (T)hp[WEIGHT_DECAY], mu = (T)hp[MOMENTUM], neg_lr = (T)(-j->lr);     \
        const T sign = hp[MAXIMIZE] != 0 ? (T)-1 : (T)1;                                  \
        T *restrict p = j->p;                                                             \
        const T *restrict g = j->g;                                                       \
        T *restrict sq = j->slot[SQUARE_AVG];                                             \
        T *restrict buf = j->slot[MOMENTUM_BUFFER];                                       \
        T *restrict ga = j->slot[GRAD_AVG];                                               \
        for (int64_t i = lo; i < hi; i++) {                                               \
            T gi = sign * g[i];                                                           \
            if (decay) gi = gi + wd * p[i];                                               \
            T s = sq[i] * alpha + oma * gi * gi;                                          \
            sq[i] = s;                                                                    \
            T avg;                                                                        \
            if (centered) {                                                               \
                T a = ga[i] * alpha + oma * gi;                                           \
                ga[i] = a;                                                                \
                avg = SQRT(s + -a * a);                                                   \
            } else {                                                                      \
                avg = SQRT(s);                                                            \
            }                                                                             \
            avg = avg + eps;                                                              \
            if (momentum) {                                                               \
                T b = buf[i] * mu + gi / avg;                                             \
                buf[i] = b;                                                               \
                p[i] = p[i] + neg_lr * b;                                                 \
            } else {                                                                      \
                p[i] = p[i] + neg_lr * gi / avg;                                          \
            }                                                                             \
        }                                                                                 \
    }
DEFINE_RMSPROP_RANGE(float, sqrtf)
DEFINE_RMSPROP_RANGE(double, sqrt)

#define RMSPROP_DISPATCH_MOM(T, decay, centered)                                          \
    do {                                                                                  \
        if (mom) rmsprop_range_##T(j, lo, hi, decay, centered, true);                     \
        else rmsprop_range_##T(j, lo, hi, decay, centered, false);                        \
    } while (0)
#define RMSPROP_DISPATCH_CENTERED(T, decay)                                               \
    do {                                                                                  \
        if (centered) RMSPROP_DISPATCH_MOM(T, decay, true);                               \
        else RMSPROP_DISPATCH_MOM(T, decay, false);                                       \
    } while (0)
#define RMSPROP_DISPATCH(T)                                                               \
    do {                                                                                  \
        if (decay) RMSPROP_DISPATCH_CENTERED(T, true);                                    \
        else RMSPROP_DISPATCH_CENTERED(T, false);                                         \
    } while (0)

static void rmsprop_cpu(const wki_optim_job *j, int64_t lo, int64_t hi)
{
    bool decay = j->hp[WEIGHT_DECAY] != 0, centered = j->hp[CENTERED] != 0;
    bool mom = j->hp[MOMENTUM] > 0;
    if (j->dtype == WK_DTYPE_F32) RMSPROP_DISPATCH(float);
    else RMSPROP_DISPATCH(double);
}

const wki_optim_algo wki_rmsprop_algo = {
    .name = "RMSprop",
    .op = "rmsprop",
    .default_lr = 1e-2,
    .nhparams = NHP,
    .hparams = rmsprop_hparams,
    .nslots = NSLOTS,
    .slots = rmsprop_slots,
    .check = NULL,
    .slot_used = rmsprop_slot_used,
    .slot_init = rmsprop_slot_init,
    .kernel = {[WK_DEVICE_CPU] = rmsprop_cpu},
};
