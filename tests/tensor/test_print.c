/* placeholder: replaced by the print tests */
#include "test_util.h"
