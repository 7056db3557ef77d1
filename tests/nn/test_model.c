/* placeholder: replaced by the model tests */
#include "test_util.h"
