"""The headers every admin answer carries: nothing cached, sniffed, referred or framed, and on
pages a Content-Security-Policy that runs no script but the listener's own file."""

from __future__ import annotations

from aiohttp import web

# The pages load one stylesheet and one script from /static/ and talk to nothing else: an
# injected <script>, inline handler or style, <base>, <object> or a form posting elsewhere
# does nothing, and no other site may frame the pages (clickjacking).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    # The pages show people's data: no shared or browser cache keeps a copy.
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer (errors and redirects too) gets them."""
    response.headers.update(HEADERS)
    if response.content_type == "text/html":
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Frame-Options"] = "DENY"  # frame-ancestors for browsers that predate it
