"""Version management (TF Serving's core/): which versions of which models are
served, from the storage path to the registry requests resolve in."""
