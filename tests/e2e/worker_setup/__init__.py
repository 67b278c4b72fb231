"""Files a local runtime's workers run before their handlers (LocalRuntime.worker_setup_files)."""
