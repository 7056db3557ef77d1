/* placeholder: replaced by the ema tests */
#include "test_util.h"
