"""m5ops: an MLOps pipeline for M5 demand forecasting."""

__version__ = "0.1.0"
