"""Stream processes: the bridge, the worker and delivery."""
