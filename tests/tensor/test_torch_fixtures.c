/* placeholder: replaced by the torch_fixtures tests */
#include "test_util.h"
