"""The scenario file and the catalogs, resolved into a deployment the fleet can run."""
