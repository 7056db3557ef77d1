/* placeholder: replaced by the container tests */
#include "test_util.h"
