"""The SCIM protocol core: pure data in, data out (no aiohttp, no ORM)."""
