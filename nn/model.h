/* placeholder: filled by the model work */
#ifndef WK_NN_MODEL_H
#define WK_NN_MODEL_H
#include "module.h"
#endif
