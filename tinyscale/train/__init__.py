"""The training stage: one recipe, brief training, evaluation on the held-out split.

- `config`: `TrainConfig` and which settings make results comparable (torch-free).
- `trainer`: `train_recipe` and its parts (torch).
"""
