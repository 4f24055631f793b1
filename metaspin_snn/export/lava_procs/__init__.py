"""Custom Lava processes (kept in their own package: Lava's model discovery executes every ``.py``
file in the folder of a Process's module, so nothing else may live here)."""
