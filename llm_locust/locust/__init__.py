"""Locust integration, the only package that imports locust: the User, options, the plugin's
state and listeners, master/worker merging, the web UI, progress and client health."""
