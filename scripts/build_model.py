"""Keras Xception model builder for xcept (being written)."""
