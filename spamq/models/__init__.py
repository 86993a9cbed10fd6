"""Model files: the manifest of a model directory and the registry of versions and aliases."""
