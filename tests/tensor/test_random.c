/* placeholder: replaced by the random tests */
#include "test_util.h"
