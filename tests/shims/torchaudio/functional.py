"""Empty: see the package docstring."""
