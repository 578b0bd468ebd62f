"""Image and mask operations shared by every plugin: refinement, paste-back, PNG metadata."""
