"""Shared training code: data splits, evaluation, plots, export and metadata."""
