"""Process-wide helpers: files written whole or not at all (`files`), quiet library logs (`logs`), seeds and
deterministic TensorFlow ops (`determinism`).

May import: errors.
"""
