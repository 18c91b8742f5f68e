"""CC-Agency: run RED experiments, batch by batch, on a cluster of Docker engines."""
