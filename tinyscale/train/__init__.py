"""The training stage: one recipe, brief training, evaluation on the held-out split.

- `config`: `TrainConfig` and which settings make results comparable (torch-free).
- `device`: where a run trains (cpu, cuda, cuda:N) and in what precision (torch-free names).
- `trainer`: `train_recipe` and its parts (torch).
- `checkpoint`: a run's progress and trunk (torch); `heartbeat`: how far a run has come (torch-free).
"""
