"""Reader training: data loading, window features with answer labels, the training loop."""
