"""Tests of the model zoo (dagnet.models)."""
