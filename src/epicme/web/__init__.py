"""ASGI building blocks both services share: CORS, body limits, JSON and HTML errors."""
