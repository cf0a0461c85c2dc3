"""The embedded forge's REST routes, one module per resource.

Each handler takes the :class:`~bot.forge.server.app.ForgeApp` and a parsed
:class:`~bot.forge.server.api.Request` and returns a :class:`~bot.forge.server.api.Response`; the routing
table that maps paths to handlers is assembled in :mod:`bot.forge.server.app`.
"""
