"""After a run: A/B comparison of runs or recipes, and export of kept images for training."""
