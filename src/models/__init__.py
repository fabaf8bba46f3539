"""Plain torch.nn.Module architectures: no Lightning, no Hydra, no data knowledge."""
