/* The optimizer object and the algorithm table (internal). optim/optimizer.c holds what
 * every algorithm shares (groups, options, the step driver, accumulation, state); each
 * algorithm file (sgd.c, adam.c, rmsprop.c, adagrad.c) fills one wki_optim_algo. */
#ifndef WK_OPTIM_OPTIMIZER_IMPL_H
#define WK_OPTIM_OPTIMIZER_IMPL_H

#include "optimizer.h"

#define WKI_OPTIM_MAX_HPARAMS 8 /* per algorithm, "lr" not counted */
#define WKI_OPTIM_MAX_SLOTS 3   /* state tensors per parameter */

/* Per-parameter state. */
typedef struct {
    int64_t step;                          /* updates of this parameter (torch's "step") */
    wk_tensor *slot[WKI_OPTIM_MAX_SLOTS];  /* persistent, owned; NULL until needed */
    bool ready[WKI_OPTIM_MAX_SLOTS];       /* slot holds a value */
} wki_param_state;

typedef struct {
    wk_tensor **params; /* borrowed */
    int nparams;
    double lr, initial_lr;
    double hp[WKI_OPTIM_MAX_HPARAMS]; /* in the order of the algorithm's hparams table */
    char **names;                     /* NULL, or nparams owned strings */
    wki_param_state *state;           /* nparams entries */
} wki_param_group;

typedef struct wki_optim_job wki_optim_job;

/* Update elements [lo, hi) of job->p (and its slots). Element-wise: chunks are
 * independent, so any split gives the same result. */
typedef void (*wki_optim_kernel)(const wki_optim_job *job, int64_t lo, int64_t hi);

/* One parameter's update, handed to its kernel chunk by chunk. */
struct wki_optim_job {
    wk_dtype dtype;                   /* float32 or float64, shared by p, g and slots */
    int64_t n;                        /* elements */
    void *p;                          /* contiguous parameter data */
    const void *g;                    /* contiguous grad data */
    void *slot[WKI_OPTIM_MAX_SLOTS];  /* contiguous slot data, NULL when unused */
    bool fresh[WKI_OPTIM_MAX_SLOTS];  /* slot allocated by this step, not yet written */
    const double *hp;                 /* the group's hyper-parameters */
    double lr;
    int64_t step;                     /* the parameter's step count, this update included */
    wki_optim_kernel kernel;
};

typedef struct {
    const char *name;
    double def;          /* torch's default */
    double lo, hi;       /* allowed: lo <= v <= hi (v < hi when hi_open) */
    bool hi_open;
    bool is_bool;        /* 0 or 1 */
} wki_hparam_info;

typedef struct {
    const char *name;   /* torch's class name */
    const char *op;     /* prefix of error messages */
    double default_lr;  /* NaN: lr must be given */
    int nhparams;
    const wki_hparam_info *hparams;
    int nslots;
    const char *const *slots; /* torch's state names */
    /* A message when hp is inconsistent (e.g. nesterov without momentum), else NULL. */
    const char *(*check)(const double *hp);
    /* Whether a group with options hp keeps slot s. */
    bool (*slot_used)(const double *hp, int s);
    /* The value a new slot starts from; NaN: none, the kernel writes it (job->fresh). */
    double (*slot_init)(const double *hp, int s);
    /* Kernels by device type (NULL: no kernel for that device). */
    wki_optim_kernel kernel[WK_DEVICE_COUNT];
} wki_optim_algo;

extern const wki_optim_algo wki_sgd_algo;
extern const wki_optim_algo wki_adam_algo;
extern const wki_optim_algo wki_adamw_algo;
extern const wki_optim_algo wki_rmsprop_algo;
extern const wki_optim_algo wki_adagrad_algo;

struct wk_optimizer {
    const char *type;          /* algo->name */
    int ngroups;
    wki_param_group *groups;
    const wki_optim_algo *algo;
    int64_t nupdates;          /* completed steps */
    int accum_n;               /* accumulation window */
    int accum_count;           /* micro-batches in the current window */
    wki_optim_job *jobs;       /* step scratch, grown as needed */
    int jobs_cap;
};

#endif
