/* placeholder: replaced by the linalg tests */
#include "test_util.h"
