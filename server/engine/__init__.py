"""Generation: the guided AnimateDiff pipeline, context windows, schedulers, the model store, jobs and the runner."""
