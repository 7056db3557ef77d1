/* placeholder: filled by the state_dict work */
#ifndef WK_NN_STATE_DICT_H
#define WK_NN_STATE_DICT_H
#include "module.h"
#endif
