"""The browser sign-in portal: what lets forward-auth guard web apps, not only APIs.

A browser without a session is sent to ``/portal/login`` and comes back to where it was
going; its cookie then carries a session token of the user (a row of kind ``session``),
so every revocation (logout, log out everywhere, a password change, disabling the user)
ends it like any other token. The pure parts live here: which ``rd`` targets may be
followed (``redirects``), the CSRF tokens of the forms (``csrf``), the cookie's value
(``cookie``); ``browsers`` is what ``/auth`` and the built-in proxy do for a browser, and
``handlers.portal`` serves the pages.
"""
