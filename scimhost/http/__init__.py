"""The thin HTTP layer: routes, middlewares and responses around the SCIM core."""
