#include "test_util.h"
Test(registry, placeholder) {}
