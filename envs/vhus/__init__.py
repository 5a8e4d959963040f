"""VHUS, the variational hierarchical user simulator: token encoding, model, training, the environment user."""
