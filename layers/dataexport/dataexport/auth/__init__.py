"""Bearer token verification."""
