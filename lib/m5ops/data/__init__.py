"""The data layer: M5 files, the synthetic generator, the day store, arrival, features, the split."""
