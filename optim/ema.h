/* placeholder: filled by the ema work */
#ifndef WK_OPTIM_EMA_H
#define WK_OPTIM_EMA_H
#include "optimizer.h"
#endif
