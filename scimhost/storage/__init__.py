"""Storage: the async backend interface and the objects the core hands to backends."""
