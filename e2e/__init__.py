"""End to end: the extension in the local sandbox exporting to a real tracing backend (Arize Phoenix), checked
through the backend's API and in a browser. Developer tooling, never in the layer; `python -m e2e` is `make phoenix`."""
