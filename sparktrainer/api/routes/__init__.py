"""The API's endpoints, one module per resource (``app.py`` includes each one's router)."""
