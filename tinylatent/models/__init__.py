"""The model catalog, one file per family. Import from here: `from tinylatent.models import VAE`."""
