"""Destinations: one module each, all behind activation.destinations.base.Destination."""
