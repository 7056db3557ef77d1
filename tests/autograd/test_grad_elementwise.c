/* placeholder: replaced by the elementwise gradient tests */
#include "test_util.h"
