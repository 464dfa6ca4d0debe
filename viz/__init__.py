"""Analyses of SMT (and other timm models) built on named tap points."""
