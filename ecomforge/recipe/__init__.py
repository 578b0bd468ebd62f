"""Recipes: the YAML that says which plugins run with which settings."""
from .load import load_recipe, parse_overrides, resolve_recipe
from .schema import Recipe

__all__ = ["Recipe", "load_recipe", "parse_overrides", "resolve_recipe"]
