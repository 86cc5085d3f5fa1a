"""DVC stage scripts: each reads params, calls ``alr_core`` and writes its artifacts."""
