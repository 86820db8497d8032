"""Request and response shapes of the HTTP API and the pages, one module per area
(the OpenAPI document at /openapi.json is generated from them)."""
