"""Pure folds of events into read models: no I/O, event time only."""
