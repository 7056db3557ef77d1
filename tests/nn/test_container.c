/* Sequential and ModuleList: naming, forward chaining, indexing, ownership, errors. */
#include "test_util.h"

TestSuite(container, .init = tu_setup, .fini = tu_teardown);

/* Stand-ins for layers written elsewhere: y = x W^T + b and relu. */
static wk_tensor *lin_forward(wk_module *m, wk_tensor *x)
{
    return wk_linear(x, wk_module_param(m, "weight"), wk_module_param(m, "bias"));
}

static wk_module *lin_new(int64_t in, int64_t out, const float *w, const float *b)
{
    wk_module *m = wk_module_new("Linear", lin_forward, 0);
    cr_assert_not_null(m);
    cr_assert_not_null(wk_module_add_parameter(
        m, "weight", wk_from_array(w, WK_SHAPE(out, in), WK_DTYPE_F32)));
    cr_assert_not_null(
        wk_module_add_parameter(m, "bias", wk_from_array(b, WK_SHAPE(out), WK_DTYPE_F32)));
    return m;
}

static wk_tensor *relu_forward(wk_module *m, wk_tensor *x)
{
    (void)m;
    return wk_relu(x);
}

static wk_module *relu_new(void) { return wk_module_new("ReLU", relu_forward, 0); }

/* A layer that always fails, with or without a message. */
static wk_tensor *fail_forward(wk_module *m, wk_tensor *x)
{
    (void)x;
    if (m->config) wk_set_error("boom: bad input");
    return NULL;
}

static wk_module *fail_new(bool with_message)
{
    return wk_module_new("Failing", fail_forward, with_message ? 8 : 0);
}

static const float W1[] = {1, -1, 0.5f, 2, 0, 1}; /* [3, 2] */
static const float B1[] = {0.5f, -4, 1};
static const float W2[] = {1, 2, -1}; /* [1, 3] */
static const float B2[] = {0.25f};

Test(container, sequential_names_children_by_position)
{
    wk_module *seq = wk_sequential_new();
    cr_assert_str_eq(seq->type, "Sequential");
    cr_assert_eq(wk_module_list_len(seq), 0);
    wk_module *a = lin_new(2, 3, W1, B1), *r = relu_new(), *b = lin_new(3, 1, W2, B2);
    cr_assert_eq(wk_sequential_append(seq, a), a);
    cr_assert_eq(wk_sequential_append(seq, r), r);
    cr_assert_eq(wk_sequential_append(seq, b), b);
    cr_assert_eq(wk_module_list_len(seq), 3);
    cr_assert_eq(wk_module_child(seq, "0"), a);
    cr_assert_eq(wk_module_child(seq, "1"), r);
    cr_assert_eq(wk_module_child(seq, "2"), b);
    cr_assert_eq(wk_module_list_get(seq, -1), b);

    wk_named_param p[8];
    int n = wk_module_named_parameters(seq, true, p, 8);
    cr_assert_eq(n, 4);
    const char *want[] = {"0.weight", "0.bias", "2.weight", "2.bias"};
    for (int i = 0; i < 4; i++) cr_assert_str_eq(p[i].name, want[i]);
    cr_assert_eq(wk_module_find(seq, "2.bias"), wk_module_param(b, "bias"));
    cr_assert_eq(wk_module_num_parameters(seq), 6 + 3 + 3 + 1);
    wk_module_free(seq);
}

Test(container, sequential_forward_chains_children)
{
    wk_module *seq =
        wk_sequential_of((wk_module *[]){lin_new(2, 3, W1, B1), relu_new(), lin_new(3, 1, W2, B2)},
                         3);
    cr_assert_not_null(seq, "%s", wk_last_error());
    wk_tensor *x = tu_f32(WK_SHAPE(2, 2), 1, 2, -3, 0.5f);
    wk_tensor *y = wk_module_forward(seq, x);
    expect_shape(y, 2, 1);
    /* By hand: h = relu(x W1^T + b1); y = h W2^T + b2. */
    double want[2];
    for (int r = 0; r < 2; r++) {
        double x0 = r ? -3 : 1, x1 = r ? 0.5 : 2, acc = B2[0];
        for (int j = 0; j < 3; j++) {
            double h = W1[2 * j] * x0 + W1[2 * j + 1] * x1 + B1[j];
            acc += W2[j] * (h > 0 ? h : 0);
        }
        want[r] = acc;
    }
    tu_expect_values(y, want, 2, 1e-6, 1e-6, "y");
    wk_module_free(seq);
}

Test(container, empty_sequential_returns_its_input)
{
    wk_module *seq = wk_sequential_of(NULL, 0);
    cr_assert_not_null(seq, "%s", wk_last_error());
    wk_tensor *x = tu_f32(WK_SHAPE(3), 1, 2, 3);
    cr_assert_eq(wk_module_forward(seq, x), x);
    wk_module_free(seq);
}

Test(container, nested_containers_have_dotted_names)
{
    wk_module *inner = wk_sequential_of((wk_module *[]){relu_new(), lin_new(2, 3, W1, B1)}, 2);
    wk_module *list = wk_module_list_new();
    wk_module_list_append(list, lin_new(3, 1, W2, B2));
    wk_module *outer = wk_sequential_of((wk_module *[]){inner, list}, 2);
    cr_assert_not_null(outer, "%s", wk_last_error());
    wk_named_param p[8];
    int n = wk_module_named_parameters(outer, false, p, 8);
    cr_assert_eq(n, 4);
    const char *want[] = {"0.1.weight", "0.1.bias", "1.0.weight", "1.0.bias"};
    for (int i = 0; i < 4; i++) cr_assert_str_eq(p[i].name, want[i]);
    /* The outer forward reaches the ModuleList, which has none: the error names the path. */
    expect_error(wk_module_forward(outer, tu_f32(WK_SHAPE(1, 2), 1, 1)),
                 "Sequential[1] (ModuleList): module_forward: ModuleList has no single-tensor "
                 "forward");
    wk_module_free(outer);
}

Test(container, sequential_forward_errors_name_the_child)
{
    wk_module *seq = wk_sequential_of((wk_module *[]){relu_new(), lin_new(3, 1, W2, B2)}, 2);
    wk_tensor *x = tu_f32(WK_SHAPE(1, 2), 1, 2); /* 2 features, the Linear wants 3 */
    expect_error(wk_module_forward(seq, x), "Sequential[1] (Linear): linear");
    wk_sequential_append(seq, fail_new(true));
    expect_error(wk_module_forward(seq, tu_f32(WK_SHAPE(1, 3), 1, 2, 3)),
                 "Sequential[2] (Failing): boom: bad input");
    wk_module_free(seq);

    seq = wk_sequential_of((wk_module *[]){fail_new(false)}, 1);
    expect_error(wk_module_forward(seq, x), "Sequential[0] (Failing) returned NULL without an "
                                            "error");
    /* A NULL input keeps the first message. */
    wk_set_error("earlier failure");
    cr_assert_null(wk_module_forward(seq, NULL));
    cr_assert_str_eq(wk_last_error(), "earlier failure");
    wk_module_free(seq);
}

Test(container, append_errors_free_the_module)
{
    wk_module *lin = lin_new(2, 3, W1, B1);
    /* Appending to a non-container fails and frees the module (ASan checks the leak). */
    expect_error(wk_sequential_append(lin, relu_new()), "sequential_append: expected a "
                                                        "Sequential, got Linear");
    expect_error(wk_module_list_append(lin, relu_new()), "module_list_append: expected a "
                                                         "ModuleList, got Linear");
    expect_error(wk_sequential_append(NULL, relu_new()), "container is NULL");
    wk_module *seq = wk_sequential_new();
    expect_error(wk_sequential_append(seq, NULL), "sequential_append: module is NULL");
    /* The next position's name is taken by a child added by hand. */
    wk_module_add_child(seq, "1", relu_new());
    expect_error(wk_sequential_append(seq, relu_new()), "already has an attribute named \"1\"");
    cr_assert_eq(wk_module_list_len(seq), 1);
    wk_module_free(seq);
    wk_module_free(lin);
}

Test(container, sequential_of_errors_free_every_module)
{
    wk_clear_error();
    expect_error(wk_sequential_of((wk_module *[]){relu_new(), NULL, relu_new()}, 3),
                 "sequential_of: module 1 is NULL");
    /* The failure that produced the NULL is kept in the message. */
    wk_set_error("linear_new: out of memory");
    cr_assert_null(wk_sequential_of((wk_module *[]){NULL, relu_new()}, 2));
    cr_assert(strstr(wk_last_error(), "module 0 is NULL (after: linear_new: out of memory)"),
              "%s", wk_last_error());
    expect_error(wk_sequential_of(NULL, 2), "expected n >= 0 and a non-NULL array");
    expect_error(wk_sequential_of(NULL, -1), "expected n >= 0");
}

Test(container, module_list_holds_and_indexes)
{
    wk_module *list = wk_module_list_new();
    cr_assert_str_eq(list->type, "ModuleList");
    expect_error(wk_module_list_get(list, 0), "module_list_get: index 0 into an empty "
                                              "ModuleList");
    wk_module *m[5];
    for (int i = 0; i < 5; i++) {
        m[i] = i % 2 ? relu_new() : lin_new(2, 3, W1, B1);
        cr_assert_eq(wk_module_list_append(list, m[i]), m[i]);
    }
    cr_assert_eq(wk_module_list_len(list), 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(wk_module_list_get(list, i), m[i]);
        cr_assert_eq(wk_module_list_get(list, i - 5), m[i]);
        char name[4];
        snprintf(name, sizeof name, "%d", i);
        cr_assert_str_eq(list->children[i].name, name);
    }
    expect_error(wk_module_list_get(list, 5), "index 5 is out of range for a ModuleList of 5 "
                                              "modules (expected -5..4)");
    expect_error(wk_module_list_get(list, -6), "index -6 is out of range");
    expect_error(wk_module_forward(list, tu_f32(WK_SHAPE(1), 1)),
                 "ModuleList has no single-tensor forward");
    cr_assert_eq(wk_module_num_parameters(list), 3 * 9);
    cr_assert_not_null(wk_module_find(list, "4.weight"));
    cr_assert_null(wk_module_find(list, "3.weight"));
    wk_module_free(list);
}

Test(container, len_and_get_reject_other_modules)
{
    wk_module *lin = lin_new(2, 3, W1, B1);
    wk_clear_error();
    cr_assert_eq(wk_module_list_len(lin), -1);
    cr_assert(strstr(wk_last_error(), "module_list_len: expected a ModuleList or Sequential, "
                                      "got Linear"), "%s", wk_last_error());
    expect_error(wk_module_list_get(lin, 0), "module_list_get: expected a ModuleList or "
                                             "Sequential, got Linear");
    expect_error(wk_module_list_get(NULL, 0), "got NULL");
    wk_module_free(lin);
}

Test(container, train_eval_reaches_appended_children)
{
    wk_module *seq = wk_sequential_new();
    wk_module_train(seq, false);
    wk_module *list = wk_module_list_new();
    wk_module *r = relu_new();
    wk_module_list_append(list, r);
    wk_sequential_append(seq, list); /* a child takes its new parent's mode */
    cr_assert(!list->training);
    wk_module_train(seq, true);
    cr_assert(list->training && r->training);
    wk_module_train(seq, false);
    cr_assert(!seq->training && !list->training && !r->training);
    wk_module_free(seq);
}

Test(container, forward_records_through_children)
{
    /* Sequential adds no op of its own: the result is the last child's output. */
    wk_module *seq = wk_sequential_of((wk_module *[]){lin_new(2, 3, W1, B1), relu_new()}, 2);
    wk_tensor *x = tu_f32(WK_SHAPE(1, 2), 1, 2);
    wk_tensor *y = wk_module_forward(seq, x);
    wk_tensor *direct = wk_relu(wk_linear(x, wk_module_find(seq, "0.weight"),
                                          wk_module_find(seq, "0.bias")));
    cr_assert_not_null(direct);
    double want[3];
    for (int i = 0; i < 3; i++) want[i] = tu_at(direct, i);
    tu_expect_values(y, want, 3, 0, 0, "y");
    wk_module_free(seq);
}
