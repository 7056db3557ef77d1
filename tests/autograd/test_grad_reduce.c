/* placeholder: replaced by the reduce gradient tests */
#include "test_util.h"
