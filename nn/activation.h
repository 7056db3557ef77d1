/* placeholder: filled by the activation work */
#ifndef WK_NN_ACTIVATION_H
#define WK_NN_ACTIVATION_H
#include "module.h"
#endif
