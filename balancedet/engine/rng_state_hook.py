"""Exact resume: carry the random-number generators' state in checkpoints.

mmengine resumes weights, optimizer, schedulers and the loop counters, but
not the state of the random generators (``torch``, ``numpy``, ``random``).
After a resume, RoI/anchor sampling (``torch.randperm``) and random
transforms therefore draw different numbers than an uninterrupted run, and
the weights diverge. :class:`RNGStateHook` stores every rank's generator
states in the checkpoint and restores them right before the first training
epoch after a resume, so an epoch-based run continues exactly, random
transforms in the main process (``num_workers=0``) included. Iter-based loops
fast-forward the data loader after ``before_train_epoch``; there the states
are restored before the first resumed step (model-side sampling is exact; the
first resumed batch's random transforms are not). Data-loader *worker*
processes own their generators and are reseeded by mmengine as usual.
"""
import random

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log

_KEY = 'rng_states'


def _capture():
    state = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(),
                 python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save per-rank RNG states into checkpoints and restore them on resume."""

    # before mmengine's CheckpointHook (VERY_LOW) in every stage
    priority = 'LOW'

    def __init__(self):
        self._pending = None
        self._gathered = None

    def after_train_epoch(self, runner):
        # Only rank 0 runs ``Runner.save_checkpoint`` (and its hooks), so in a
        # distributed run every rank's state is gathered here, where all ranks
        # are, just before the checkpoint hook saves the epoch.
        if get_dist_info()[1] > 1:
            self._gathered = (runner.iter, all_gather_object(_capture()))

    def before_save_checkpoint(self, runner, checkpoint):
        if get_dist_info()[1] == 1:
            checkpoint[_KEY] = [_capture()]
        elif self._gathered is not None and self._gathered[0] == runner.iter:
            checkpoint[_KEY] = self._gathered[1]
        # else: a distributed iter-based save; the random streams are not kept

    def after_load_checkpoint(self, runner, checkpoint):
        states = checkpoint.get(_KEY)
        if states is None:
            return
        rank, world_size = get_dist_info()
        if len(states) != world_size:
            print_log(f'RNGStateHook: checkpoint holds RNG states of {len(states)} processes, '
                      f'this run has {world_size}; random streams are not restored',
                      logger='current', level=30)
            return
        self._pending = states[rank]

    def _apply_pending(self):
        state, self._pending = self._pending, None
        if state is not None:
            torch.set_rng_state(state['torch'])
            np.random.set_state(state['numpy'])
            random.setstate(state['python'])
            if 'cuda' in state and torch.cuda.is_available():
                torch.cuda.set_rng_state(state['cuda'])

    def before_train_epoch(self, runner):
        # Epoch-based loops resume at an epoch boundary: restoring here, before
        # the data loader is iterated, makes the continuation exact.
        if hasattr(runner.train_loop, 'max_epochs'):
            self._apply_pending()

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        # Iter-based loops fast-forward the data loader after
        # ``before_train_epoch``; restore before the first resumed step.
        self._apply_pending()
