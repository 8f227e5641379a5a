"""Forecast accuracy: point metrics and M5's WRMSSE."""
