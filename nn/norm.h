/* placeholder: filled by the norm work */
#ifndef WK_NN_NORM_H
#define WK_NN_NORM_H
#include "module.h"
#endif
