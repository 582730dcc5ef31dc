"""The headers of every HTML page EpicMe serves (sign-in, consent, errors, the home pages).

Pages carry no scripts and load nothing from elsewhere. `frame-ancestors 'none'` and
X-Frame-Options refuse framing (clickjacking of the consent button, RFC 9700 §4.16).
`form-action` is left unset on purpose: after a form post, Chrome applies it to the redirect
to the client's redirect_uri too, which would break every sign-in.
"""

from __future__ import annotations

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}
