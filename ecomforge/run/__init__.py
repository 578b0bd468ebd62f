"""Running recipes: the runner, the run folder, progress and the local executor."""
