/* placeholder: filled by the scheduler work */
#ifndef WK_OPTIM_SCHEDULER_H
#define WK_OPTIM_SCHEDULER_H
#include "optimizer.h"
#endif
