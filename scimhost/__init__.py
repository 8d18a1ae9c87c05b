"""scimhost: a SCIM 2.0 service provider with many sources and plugins everywhere."""

__version__ = "0.1.0"
