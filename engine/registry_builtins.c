/* The table of built-in types. registry.c reads it on first use, which also makes the
 * static library link every builder (constructor attributes would not). */
#include "registry-impl.h"

#define B(kind, name, fn) {WK_KIND_##kind, name, (wk_ctor_fn)(fn)}

const wki_builtin wki_builtins[] = {
    B(MODEL, "MLP", wki_build_mlp),
    B(MODEL, "FashionMNISTCNN", wki_build_fmnist_cnn),
    B(MODEL, "ResNet", wki_build_resnet),
    B(MODEL, "GPT", wki_build_gpt),
    B(DATASET, "FashionMNIST", wki_build_fashion_mnist),
    B(DATASET, "MNIST", wki_build_mnist),
    B(DATASET, "TwoCircles", wki_build_two_circles),
    B(DATASET, "Regression", wki_build_regression),
    B(DATASET, "ByteText", wki_build_byte_text),
    B(TRANSFORM, "Normalize", wki_build_normalize),
    B(TRANSFORM, "RandomCrop", wki_build_random_crop),
    B(TRANSFORM, "RandomHorizontalFlip", wki_build_random_hflip),
    B(TRANSFORM, "ToTensor", wki_build_to_tensor),
    B(OPTIMIZER, "SGD", wki_build_sgd),
    B(OPTIMIZER, "Adam", wki_build_adam),
    B(OPTIMIZER, "AdamW", wki_build_adamw),
    B(OPTIMIZER, "RMSprop", wki_build_rmsprop),
    B(OPTIMIZER, "Adagrad", wki_build_adagrad),
    B(SCHEDULER, "StepLR", wki_build_step_lr),
    B(SCHEDULER, "MultiStepLR", wki_build_multistep_lr),
    B(SCHEDULER, "ExponentialLR", wki_build_exponential_lr),
    B(SCHEDULER, "CosineAnnealingLR", wki_build_cosine_lr),
    B(SCHEDULER, "LinearLR", wki_build_linear_lr),
    B(SCHEDULER, "ConstantLR", wki_build_constant_lr),
    B(SCHEDULER, "PolynomialLR", wki_build_polynomial_lr),
    B(SCHEDULER, "OneCycleLR", wki_build_onecycle_lr),
    B(SCHEDULER, "CosineAnnealingWarmRestarts", wki_build_cosine_restarts_lr),
    B(SCHEDULER, "ReduceLROnPlateau", wki_build_plateau),
    B(SCHEDULER, "SequentialLR", wki_build_sequential_lr),
    B(SCHEDULER, "ChainedScheduler", wki_build_chained),
    B(SCHEDULER, "qWarmupScheduler", wki_build_qwarmup),
    B(METRIC, "Accuracy", wki_build_accuracy),
    B(METRIC, "Loss", wki_build_loss_metric),
    B(METRIC, "MSE", wki_build_mse),
    B(METRIC, "ConfusionMatrix", wki_build_confusion_matrix),
};

const int wki_nbuiltins = (int)(sizeof wki_builtins / sizeof wki_builtins[0]);
