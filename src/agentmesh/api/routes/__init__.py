"""REST routers of the control plane (one module per area)."""
