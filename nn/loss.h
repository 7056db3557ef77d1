/* placeholder: filled by the loss work */
#ifndef WK_NN_LOSS_H
#define WK_NN_LOSS_H
#include "module.h"
#endif
