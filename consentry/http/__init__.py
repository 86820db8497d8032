"""What the HTTP edges share: typed dependencies (services, settings, the client, the
signed-in person), the one error shape and its mapping, and the request/response schemas.
The API's routers (``api/``) and the pages (``web/``) both build on this and never import
each other; ``api/app.py`` assembles them into one app."""
