"""Fine-tuning, evaluation and prediction of ported checkpoints in MindSpore (model-zoo recipes)."""
