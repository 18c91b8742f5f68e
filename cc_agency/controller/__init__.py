"""The controller: a daemon that places batches on Docker engines, runs them and records their results."""
