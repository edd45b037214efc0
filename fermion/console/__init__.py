"""The web console: static pages served at /ui by the API server, and its few server-side handlers (docs/console.md)."""
