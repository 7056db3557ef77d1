/* placeholder: replaced by the state_dict tests */
#include "test_util.h"
