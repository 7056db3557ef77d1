/* placeholder: replaced by the activation tests */
#include "test_util.h"
