"""Consentry: a safety gate and case system for generative-image platforms."""

__version__ = "0.1.0"
