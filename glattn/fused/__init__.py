"""Fused seeds: the jobs of a sweep that differ only in ``seed`` trained as one
stacked model, one member per seed (Wang et al., "Horizontally Fused Training Array", MLSys
2021, arXiv:2102.02344).

- `stack`: `FusedModel` (members' parameters and buffers stacked, one vmapped
  functional_call; member parameters are slices of the stack, so each member's own
  ``torch.optim`` optimizer and scheduler update it exactly as in its unfused job) and the
  members' own generators for drop_path / dropout;
- `exact`: with ``exact=True`` (trainer.deterministic) the convolutions, BatchNorms and
  channel means run member by member inside the fused call: bit-identical on the CPU;
- `check`: can these members be fused? (a vmapped forward/backward on a tiny input, Python
  state that changes across calls), else the reason, in one line;
- `trainer`: the fused epoch: each member its own sampler order, augmentation stream, loss,
  optimizer step, early stopping and non-finite-loss guard.
"""
