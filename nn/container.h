/* placeholder: filled by the container work */
#ifndef WK_NN_CONTAINER_H
#define WK_NN_CONTAINER_H
#include "module.h"
#endif
