/* placeholder: replaced by the conv tests */
#include "test_util.h"
