"""Test-only code: tiny-model writers, key-layout converters, measurements. Never shipped."""
