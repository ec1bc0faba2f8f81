"""Schemas shipped with hwvtep (package data)."""
