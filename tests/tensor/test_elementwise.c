/* placeholder: replaced by the elementwise tests */
#include "test_util.h"
