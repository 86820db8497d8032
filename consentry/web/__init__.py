"""Server-rendered public pages: the takedown form and the requester's status page."""
