"""The HTTP API (FastAPI): ``sparktrainer.api.app.create_app(settings)``."""
