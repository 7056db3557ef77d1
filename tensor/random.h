/* placeholder: filled by the random work */
#ifndef WK_RANDOM_H
#define WK_RANDOM_H
#include "tensor.h"
#endif
