/* placeholder: filled by the linear work */
#ifndef WK_NN_LINEAR_H
#define WK_NN_LINEAR_H
#include "module.h"
#endif
