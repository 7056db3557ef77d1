/* placeholder: filled by the conv work */
#ifndef WK_NN_CONV_H
#define WK_NN_CONV_H
#include "module.h"
#endif
