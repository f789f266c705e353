"""Reading specs: YAML text → marked tree (load) → validated Spec (model)."""
