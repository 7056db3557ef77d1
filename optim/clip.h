/* placeholder: filled by the clip work */
#ifndef WK_OPTIM_CLIP_H
#define WK_OPTIM_CLIP_H
#include "optimizer.h"
#endif
