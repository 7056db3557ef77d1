/* placeholder: filled by the creation work */
#ifndef WK_CREATION_H
#define WK_CREATION_H
#include "tensor.h"
#endif
