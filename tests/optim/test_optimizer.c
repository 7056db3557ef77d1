/* placeholder: replaced by the optimizer tests */
#include "test_util.h"
