#!/usr/bin/python3
"""PyTorch reference values for wick's LR schedulers: tests/fixtures/schedulers.json.

For each scheduler type and a few option sets, runs torch.optim.lr_scheduler on a dummy
SGD optimizer with two parameter groups (base lrs GROUPS) and records, after
construction and after each of STEPS calls of step():
  "lr":     get_last_lr()              - what a torch user sees (torch's chainable,
                                          recursive form where the class has one)
  "closed": _get_closed_form_lr()      - torch's closed form, where the class has one
                                          (null otherwise)
ReduceLROnPlateau cases also hold "metrics", the values fed to step(metric) (one per
step; "lr"[i + 1] is the lr after the i-th metric).

A case is {"name", "type", "args", "lr", "closed"[, "metrics"]}; "args" are torch's
keyword arguments (for SequentialLR/ChainedScheduler: "schedulers", a list of
{"type", "args"}, and "milestones"); LambdaLR's "args" name the lambda ("fn":
"pow095" = 0.95**k, "inv" = 1/(k+1)). tests/optim/test_scheduler.c rebuilds each
case with wick's schedulers.

Run from the repository root with Debian's torch:  /usr/bin/python3 tools/gen_sched_fixtures.py
"""
import json
import os
import warnings

import torch
from torch.optim import lr_scheduler as L

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures',
                   'schedulers.json')
GROUPS = [0.1, 0.02]
STEPS = 30
LAMBDAS = {'pow095': lambda k: 0.95 ** k, 'inv': lambda k: 1.0 / (k + 1)}


def make_opt():
    ps = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    return torch.optim.SGD([{'params': [ps[0]], 'lr': GROUPS[0]},
                            {'params': [ps[1]], 'lr': GROUPS[1]}], lr=GROUPS[0], momentum=0.9)


def build(opt, typ, args):
    if typ == 'LambdaLR':
        return L.LambdaLR(opt, LAMBDAS[args['fn']])
    if typ in ('SequentialLR', 'ChainedScheduler'):
        subs = [build(opt, s['type'], s['args']) for s in args['schedulers']]
        if typ == 'ChainedScheduler':
            return L.ChainedScheduler(subs)
        return L.SequentialLR(opt, subs, milestones=args['milestones'])
    return getattr(L, typ)(opt, **args)


def run(name, typ, args, metrics=None):
    opt = make_opt()
    s = build(opt, typ, args)
    has_closed = hasattr(s, '_get_closed_form_lr')
    lrs = [[g['lr'] for g in opt.param_groups]]
    closed = [s._get_closed_form_lr()] if has_closed else None
    for i in range(STEPS):
        opt.step()
        if metrics is not None:
            s.step(metrics[i])
            lrs.append([g['lr'] for g in opt.param_groups])
        else:
            s.step()
            lrs.append(list(s.get_last_lr()))
        if has_closed:
            closed.append(s._get_closed_form_lr())
    case = {'name': name, 'type': typ, 'args': args, 'lr': lrs, 'closed': closed}
    if metrics is not None:
        case['metrics'] = metrics
    return case


def main():
    warnings.simplefilter('ignore')
    sub = lambda t, **a: {'type': t, 'args': a}  # noqa: E731
    cases = [
        run('step_3_half', 'StepLR', {'step_size': 3, 'gamma': 0.5}),
        run('step_7', 'StepLR', {'step_size': 7, 'gamma': 0.1}),
        run('multistep', 'MultiStepLR', {'milestones': [2, 5, 5, 11], 'gamma': 0.3}),
        run('multistep_0', 'MultiStepLR', {'milestones': [20, 0], 'gamma': 0.1}),
        run('exp_09', 'ExponentialLR', {'gamma': 0.9}),
        run('exp_105', 'ExponentialLR', {'gamma': 1.05}),
        run('cos_10', 'CosineAnnealingLR', {'T_max': 10}),
        run('cos_25_min', 'CosineAnnealingLR', {'T_max': 25, 'eta_min': 1e-3}),
        run('cos_7_min', 'CosineAnnealingLR', {'T_max': 7, 'eta_min': 0.005}),
        run('linear_default', 'LinearLR', {}),
        run('linear_down', 'LinearLR', {'start_factor': 1.0, 'end_factor': 0.1,
                                        'total_iters': 20}),
        run('linear_flat', 'LinearLR', {'start_factor': 0.5, 'end_factor': 0.5,
                                        'total_iters': 10}),
        run('constant_default', 'ConstantLR', {}),
        run('constant_0', 'ConstantLR', {'factor': 0.5, 'total_iters': 0}),
        run('poly_5', 'PolynomialLR', {'total_iters': 5}),
        run('poly_20_sq', 'PolynomialLR', {'total_iters': 20, 'power': 2.0}),
        run('poly_12_sqrt', 'PolynomialLR', {'total_iters': 12, 'power': 0.5}),
        run('onecycle_cos', 'OneCycleLR', {'max_lr': [1.0, 0.2], 'total_steps': 30}),
        run('onecycle_linear', 'OneCycleLR', {'max_lr': 0.5, 'epochs': 3, 'steps_per_epoch': 10,
                                              'pct_start': 0.25, 'anneal_strategy': 'linear'}),
        run('onecycle_three', 'OneCycleLR', {'max_lr': [1.0, 0.2], 'total_steps': 32,
                                             'three_phase': True, 'div_factor': 10.0,
                                             'final_div_factor': 100.0, 'pct_start': 0.4}),
        run('restarts_5', 'CosineAnnealingWarmRestarts', {'T_0': 5}),
        run('restarts_3x2', 'CosineAnnealingWarmRestarts', {'T_0': 3, 'T_mult': 2,
                                                             'eta_min': 1e-3}),
        run('restarts_4x3', 'CosineAnnealingWarmRestarts', {'T_0': 4, 'T_mult': 3}),
        run('lambda_pow', 'LambdaLR', {'fn': 'pow095'}),
        run('lambda_inv', 'LambdaLR', {'fn': 'inv'}),
        run('seq_linear_cos', 'SequentialLR', {
            'schedulers': [sub('LinearLR', start_factor=0.1, end_factor=1.0, total_iters=5),
                           sub('CosineAnnealingLR', T_max=25, eta_min=1e-4)],
            'milestones': [5]}),
        run('seq_three', 'SequentialLR', {
            'schedulers': [sub('ConstantLR', factor=0.5, total_iters=3),
                           sub('ExponentialLR', gamma=0.9),
                           sub('StepLR', step_size=4, gamma=0.5)],
            'milestones': [4, 12]}),
        run('chain_const_exp', 'ChainedScheduler', {
            'schedulers': [sub('ConstantLR', factor=0.1, total_iters=2),
                           sub('ExponentialLR', gamma=0.9)]}),
        run('chain_lin_step_cos', 'ChainedScheduler', {
            'schedulers': [sub('LinearLR', start_factor=0.5, end_factor=1.0, total_iters=8),
                           sub('StepLR', step_size=5, gamma=0.5),
                           sub('CosineAnnealingLR', T_max=40)]}),
    ]
    # plateau: a metric that improves, stalls, improves a little (below/above threshold)
    m1 = [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.79999, 0.7, 0.7, 0.71, 0.72, 0.6, 0.6, 0.6,
          0.6, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.49, 0.49, 0.49, 0.49, 0.49, 0.49]
    m2 = [0.1, 0.2, 0.25, 0.28, 0.3, 0.45, 0.44, 0.46, 0.5, 0.51, 0.52, 0.53, 0.7, 0.69,
          0.68, 0.67, 0.8, 0.8, 0.81, 0.9, 0.9, 0.9, 0.9, 0.9, 0.95, 0.9, 0.9, 0.9, 0.9, 0.9]
    m3 = [5.0 - 0.01 * i if i % 4 == 0 else 5.0 for i in range(STEPS)]
    cases += [
        run('plateau_min_rel', 'ReduceLROnPlateau', {'mode': 'min', 'factor': 0.5,
                                                     'patience': 2}, m1),
        run('plateau_max_abs_cool', 'ReduceLROnPlateau', {
            'mode': 'max', 'factor': 0.3, 'patience': 1, 'threshold': 0.05,
            'threshold_mode': 'abs', 'cooldown': 2}, m2),
        run('plateau_minlr_eps', 'ReduceLROnPlateau', {
            'mode': 'min', 'factor': 0.2, 'patience': 0, 'threshold': 0.0,
            'min_lr': [0.001, 0.0005], 'eps': 5e-4}, m3),
        run('plateau_max_rel', 'ReduceLROnPlateau', {
            'mode': 'max', 'factor': 0.7, 'patience': 3, 'threshold': 0.1,
            'cooldown': 1, 'min_lr': 0.004}, m2),
    ]
    doc = {'generator': 'tools/gen_sched_fixtures.py', 'torch_version': torch.__version__,
           'groups': GROUPS, 'steps': STEPS, 'cases': cases}
    with open(OUT, 'w') as f:
        json.dump(doc, f, indent=1)
        f.write('\n')
    print('wrote %s: %d cases' % (OUT, len(cases)))


if __name__ == '__main__':
    main()
