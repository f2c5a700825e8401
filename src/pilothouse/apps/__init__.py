"""Reference applications built on Pilothouse (each imported on its own; nothing here loads)."""
