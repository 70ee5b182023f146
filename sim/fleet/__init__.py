"""Many replicas: intake, gateway, router, and ``simulate`` (the only SimPy environment)."""
