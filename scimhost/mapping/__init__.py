"""Property mappings: runtime interface, variable sanitizing, evaluation."""
