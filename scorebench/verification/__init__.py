"""Verification: scenarios, error and order measurement, statistical acceptance, reports, the suite runner."""
